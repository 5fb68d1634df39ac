module github.com/wabsync/wabsync

go 1.26.8
