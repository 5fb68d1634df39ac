package store

import "github.com/wabsync/wabsync"

// failQueuedChunk is how many queued messages FailQueued reads at a time,
// so that a long outbox is failed in bounded memory.
const failQueuedChunk = 500

// FailQueued fails every message of the session still to send (queued, or
// taken by the sender) with code and msg, each with its message.failed
// event, and returns how many. A logout calls it in the transaction of its
// status change: messages accepted for the account that was linked must
// not go out from the next one.
func (tx *Tx) FailQueued(sessionID, code, msg string) (int, error) {
	n := 0
	after := int64(-1)
	for {
		ids, last, err := tx.outboxPage(sessionID, after, failQueuedChunk)
		if err != nil || len(ids) == 0 {
			return n, err
		}
		if err := tx.PrefetchMessages(sessionID, ids, nil); err != nil {
			return n, err
		}
		for _, id := range ids {
			if err := tx.failUnsent(sessionID, id, code, msg); err != nil {
				return n, err
			}
		}
		n += len(ids)
		after = last
	}
}

// failUnsent fails a message the sender never sent: its history goes
// from queued to failed, without the "sending" that MarkFailed records.
func (tx *Tx) failUnsent(sessionID, id, code, msg string) error {
	m, err := tx.getMessage(sessionID, id)
	if err != nil {
		return err
	}
	if m.Status.Final() {
		return nil
	}
	m.Error = &wabsync.MessageError{Code: code, Message: msg}
	setStatus(m, wabsync.MsgFailed, tx.db.Now())
	body, err := tx.saveMessage(m)
	if err != nil {
		return err
	}
	return tx.messageEvent(m, wabsync.EventMessageFailed, body)
}

// outboxPage returns the ids of up to limit messages of the session still
// to send, after sequence after, in order, with the last one's sequence.
func (tx *Tx) outboxPage(sessionID string, after int64, limit int) ([]string, int64, error) {
	rows, err := tx.Query(`SELECT id, seq FROM messages WHERE session_id = ? AND status IN ('queued', 'sending') AND seq > ? ORDER BY seq LIMIT ?`,
		sessionID, after, limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var ids []string
	last := after
	for rows.Next() {
		var id string
		if err := rows.Scan(&id, &last); err != nil {
			return nil, 0, err
		}
		ids = append(ids, id)
	}
	return ids, last, rows.Err()
}
