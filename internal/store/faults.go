package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/wabsync/wabsync"
)

// errStorageUnavailable is what a client is told of a storage fault.
var errStorageUnavailable = &wabsync.Error{Code: wabsync.EUnavailable,
	Message: "The database is unavailable or cannot store more right now; retry later."}

// Fault is a storage error that no request causes and that ends by itself
// or by its operator's hand: the database cannot be reached, is shutting
// down, or cannot store more (a full or failing disk). It unwraps to an
// UNAVAILABLE *wabsync.Error for the HTTP layer (503) and to the driver's
// error; Kind names it by driver code, for logs, without the driver's text
// (which can quote data or connection settings).
type Fault struct {
	Kind string
	err  error
}

func (f *Fault) Error() string { return "storage unavailable (" + f.Kind + "): " + f.err.Error() }

// Unwrap returns the client-safe error and the cause.
func (f *Fault) Unwrap() []error { return []error{errStorageUnavailable, f.err} }

// Classify returns err as a *Fault when a driver code says the database is
// unavailable or full, and err unchanged otherwise (nil, an error that is
// already a *wabsync.Error, or any other failure).
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var we *wabsync.Error
	var f *Fault
	if errors.As(err, &f) || errors.As(err, &we) {
		return err
	}
	if kind := faultKind(err); kind != "" {
		return &Fault{Kind: kind, err: err}
	}
	return err
}

// faultKind names the fault err is, by driver code, or returns "".
func faultKind(err error) string {
	// First: a refused connection carries the server's reason, a PgError
	// (such as 55000, "not accepting connections") that alone is no fault.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return "postgres: cannot connect"
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pgFault(pe.Code)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return sqliteFault(se.Code())
	}
	// net.OpError, not net.Error: syscall.Errno satisfies net.Error, and a
	// file error (a media file that cannot be opened) is no storage fault.
	var oe *net.OpError
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return "disk full"
	case errors.As(err, &oe):
		return "network"
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection lost"
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return "timeout"
	case pgconn.SafeToRetry(err):
		return "connection lost"
	}
	return ""
}

// pgFault names the PostgreSQL SQLSTATE codes of a fault: class 08
// (connection exception), 53 (insufficient resources: disk full, out of
// memory, too many connections), 58 (system error: I/O) and 57P01-03
// (administrator or crash shutdown, cannot connect now).
func pgFault(code string) string {
	switch {
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"), strings.HasPrefix(code, "58"),
		code == "57P01", code == "57P02", code == "57P03":
		return "postgres: SQLSTATE " + code
	}
	return ""
}

// sqliteFault names the SQLite result codes of a fault (by primary code:
// extended codes such as SQLITE_IOERR_WRITE keep it in their low byte).
// SQLITE_BUSY reaches the store only after busy_timeout.
func sqliteFault(code int) string {
	names := map[int]string{
		sqlite3.SQLITE_FULL:     "SQLITE_FULL",
		sqlite3.SQLITE_IOERR:    "SQLITE_IOERR",
		sqlite3.SQLITE_CANTOPEN: "SQLITE_CANTOPEN",
		sqlite3.SQLITE_BUSY:     "SQLITE_BUSY",
		sqlite3.SQLITE_NOMEM:    "SQLITE_NOMEM",
		sqlite3.SQLITE_READONLY: "SQLITE_READONLY",
		sqlite3.SQLITE_PROTOCOL: "SQLITE_PROTOCOL",
	}
	if name, ok := names[code&0xff]; ok {
		return "sqlite: " + name + " (" + strconv.Itoa(code) + ")"
	}
	return ""
}

// faultMemory is how long a write that failed with a fault makes Ping
// report the database failing, unless a write commits meanwhile: long
// enough for a readiness probe to see it, short enough that a node nobody
// writes to is tried again.
const faultMemory = 15 * time.Second

// writeFault is the last write's fault (nil after a write committed).
type writeFault struct {
	kind string
	at   time.Time
}

// faults remembers the writer's last fault for Ping.
type faults struct{ last atomic.Pointer[writeFault] }

// note records the outcome of a write transaction: a commit clears the
// fault, a fault is remembered, any other failure changes nothing.
func (f *faults) note(err error) {
	if err == nil {
		if f.last.Load() != nil {
			f.last.Store(nil)
		}
		return
	}
	if kind := faultKind(err); kind != "" {
		f.last.Store(&writeFault{kind: kind, at: time.Now()})
	}
}

// recent returns the fault of a write in the last faultMemory, or nil.
func (f *faults) recent() *writeFault {
	w := f.last.Load()
	if w == nil || time.Since(w.at) > faultMemory {
		return nil
	}
	return w
}
