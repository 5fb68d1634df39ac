package store

import (
	"context"
	"strings"
)

// blobKeyField is how a stored message names its media's blob (see
// storedMessage): the key, 64 hexadecimal digits, follows it.
const blobKeyField = `"blob_key":"`

// ReferencedBlobs reports which of keys a message of any session refers to
// as its media's blob. The blob collector asks it before it removes a file;
// a deleted session's messages are gone with it, so their blobs are no
// longer referenced.
//
// The key lives in the message's body, so this reads the body of every
// message with media once per call (the collector asks in large batches,
// about once an hour); keys outside the ones asked about are not kept.
func (db *DB) ReferencedBlobs(ctx context.Context, keys []string) (map[string]bool, error) {
	asked := make(map[string]bool, len(keys))
	for _, k := range keys {
		asked[k] = false
	}
	rows, err := db.query(ctx, `SELECT body FROM messages WHERE body LIKE ?`, "%"+blobKeyField+"%")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[string]bool)
	var body string
	for rows.Next() {
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		if k := blobKeyOf(body); k != "" {
			if _, ok := asked[k]; ok {
				found[k] = true
			}
		}
	}
	return found, rows.Err()
}

// blobKeyOf returns the blob key in a stored message's body, or "".
func blobKeyOf(body string) string {
	i := strings.Index(body, blobKeyField)
	if i < 0 {
		return ""
	}
	rest := body[i+len(blobKeyField):]
	end := strings.IndexByte(rest, '"')
	if end < 0 {
		return ""
	}
	return rest[:end]
}
