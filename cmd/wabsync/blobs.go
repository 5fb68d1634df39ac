package main

import (
	"context"
	"time"
)

// startBlobCollector removes, every MediaGCInterval, the files of this
// node's blob store that no message refers to any more and that are older
// than MediaGCGrace (see media.Store.Collect). Each node collects its own
// data directory only. It stops when Close runs its closers.
func (m *Main) startBlobCollector() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(m.Config.MediaGCInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.CollectBlobs(ctx)
			}
		}
	}()
	m.closers = append(m.closers, func() { cancel(); <-done })
}

// CollectBlobs runs one collection of the blob store and returns how many
// files it removed; a failure is logged (the next run tries again).
func (m *Main) CollectBlobs(ctx context.Context) int {
	n, err := m.Blobs.Collect(ctx, m.Config.MediaGCGrace, m.DB.ReferencedBlobs)
	if err != nil && ctx.Err() == nil {
		m.Logger.Warn("collecting unreferenced media files", "removed", n, "err", err)
	} else if n > 0 {
		m.Logger.Info("collected unreferenced media files", "removed", n)
	}
	return n
}
