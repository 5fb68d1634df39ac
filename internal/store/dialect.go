package store

import (
	"strconv"
	"strings"
	"sync"
)

var rebindCache sync.Map // string → string

// rebind turns ? placeholders into $1, $2 … for PostgreSQL. Queries are
// written once with ?; none of ours has a literal ? in a string.
func (db *DB) rebind(q string) string {
	if db.dialect != Postgres {
		return q
	}
	if v, ok := rebindCache.Load(q); ok {
		return v.(string)
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	out := b.String()
	rebindCache.Store(q, out)
	return out
}

// forUpdate is the row-locking suffix of a SELECT that is followed by an
// update in the same transaction. SQLite's single writer already serialises.
func (db *DB) forUpdate() string {
	if db.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// skipLocked is the suffix for claiming rows that other nodes may claim too.
func (db *DB) skipLocked() string {
	if db.dialect == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// isUniqueViolation reports whether err is a unique-constraint failure.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "SQLSTATE 23505") || strings.Contains(s, "duplicate key value")
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
