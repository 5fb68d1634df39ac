package httpapi

import (
	"encoding/json"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/store"
)

type storeTx = store.Tx

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

type wabsyncError = wabsync.Error
