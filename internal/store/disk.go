package store

import (
	"path/filepath"
	"syscall"
)

// FreeSpace returns the space an unprivileged process may still write on
// the file systems of dirs: the least of them.
func FreeSpace(dirs ...string) (uint64, error) {
	var least uint64
	for i, d := range dirs {
		var st syscall.Statfs_t
		if err := syscall.Statfs(d, &st); err != nil {
			return 0, err
		}
		free := st.Bavail * uint64(st.Bsize)
		if i == 0 || free < least {
			least = free
		}
	}
	return least, nil
}

// Dir returns the directory of the SQLite file, or "" on PostgreSQL.
func (db *DB) Dir() string {
	if db.path == "" {
		return ""
	}
	return filepath.Dir(db.path)
}
