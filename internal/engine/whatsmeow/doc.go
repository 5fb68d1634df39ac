// Package whatsmeow is WabSync's engine for the real WhatsApp network: it links
// a WhatsApp account as a companion device ("linked device") through
// go.mau.fi/whatsmeow, the unofficial multi-device protocol, and maps
// whatsmeow's events, messages and errors to WabSync's Engine interface. It
// is the only package that imports whatsmeow.
//
// # Store
//
// whatsmeow's device store (keys, Signal sessions, contacts, the LID map, the
// decrypted-event buffer) lives in WabSync's own database, in whatsmeow's
// tables (whatsmeow_*, versioned in whatsmeow_version), on SQLite or
// PostgreSQL. NewFactory brings them up to date. A session remembers its
// device JID (wabsync.EnginePaired.DeviceJID); logging out, being logged out
// from the phone, and Factory.DeleteDevice remove the device and, by
// cascade, all its keys.
//
// # Events
//
// onEvent (events.go) is the one place where whatsmeow's events become
// WabSync's:
//
//	QR channel code             → EngineQR{Code, ExpiresAt: now + whatsmeow's per-code timeout}
//	QR channel timeout          → EngineLinkTimeout
//	QR channel error            → EngineLinkTimeout (no event says "link failed"; the cause is logged)
//	PairSuccess                 → EnginePaired{DeviceJID, Phone, PushName}
//	Connected                   → EngineConnected{Phone, PushName} (again when the push name arrives later)
//	Disconnected                → EngineDisconnected (the runtime reconnects)
//	KeepAliveTimeout > 3 min    → EngineDisconnected (shorter ones are logged)
//	LoggedOut, ConnectFailure 401/403/406 → EngineLoggedOut (device deleted)
//	ConnectFailure, other       → EngineDisconnected{"WhatsApp refused the connection: …"} (while linking: EngineLinkTimeout)
//	StreamReplaced              → EngineStreamReplaced
//	TemporaryBan                → EngineTemporaryBan{Reason, Expires}
//	ClientOutdated              → EngineClientOutdated
//	Message                     → EngineMessage (every kind; see fillContent)
//	Receipt delivered/inactive, read/read-self, played/played-self → EngineReceipt
//	UndecryptableMessage        → EngineUndecryptable
//	ChatPresence                → EnginePresence{typing|recording|paused}
//
// During a Connect of a linked device the outcome of the login is also the
// Connect's result: a dropped connection is only the Connect's error, and the
// permanent refusals are both an event and a permanent *wabsync.EngineError.
//
// # Acknowledgements
//
// Clients run with whatsmeow's SynchronousAck and decrypted-event buffer: a
// message or receipt is acknowledged to WhatsApp only after the engine's
// handler returned nil (WabSync stored it). When the handler fails, no ack
// is sent, WhatsApp delivers the stanza again on a later connection, and
// whatsmeow decrypts it again from the buffer. Undecryptable messages are
// the exception: whatsmeow acks them (with a retry request to the sender)
// before the event is dispatched.
package whatsmeow
