package whatsmeow

import (
	"context"
	"fmt"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"

	"github.com/wabsync/wabsync"
)

// onEvent is the one place whatsmeow's events become WabSync's. It returns
// false only when WabSync could not store a message, receipt or undecryptable
// message: whatsmeow then holds back the acknowledgement (the client runs
// with SynchronousAck) and WhatsApp delivers the stanza again later.
func (e *Engine) onEvent(cli waClient, raw any) bool {
	if !e.current(cli) {
		return true
	}
	switch evt := raw.(type) {
	case *events.Message:
		return e.onMessage(cli, evt)
	case *events.Receipt:
		return e.onReceipt(cli, evt)
	case *events.UndecryptableMessage:
		return e.onUndecryptable(cli, evt)
	case *events.ChatPresence:
		e.onChatPresence(cli, evt)

	case *events.PairSuccess:
		e.onPairSuccess(cli, evt)
	case *events.PairError:
		// The QR channel reports it too (as an error item); see watchQR.
		e.log.Warn("whatsmeow: pairing failed", "err", evt.Error)
	case *events.Connected:
		e.onConnected(cli)
	case *events.PushNameSetting, *events.AppStateSyncComplete:
		e.onPushNameMaybeChanged(cli)
	case *events.Disconnected:
		e.onDisconnected(cli, "WhatsApp closed the connection")
	case *events.KeepAliveTimeout:
		e.onKeepAliveTimeout(cli, evt)
	case *events.KeepAliveRestored:
		e.log.Info("whatsmeow: keep-alive pings answered again")
	case *events.LoggedOut:
		e.onLoggedOut(cli, loggedOutReason(evt))
	case *events.StreamReplaced:
		e.onFatal(cli, wabsync.EngineStreamReplaced{}, &wabsync.EngineError{Code: CodeStreamReplaced, Permanent: true,
			Message: "another client connected with this session's keys and took over the link"})
	case *events.TemporaryBan:
		ev := wabsync.EngineTemporaryBan{Reason: evt.Code.String()}
		msg := "WhatsApp banned the account for a while: " + evt.Code.String()
		if evt.Expire > 0 {
			ev.Expires = e.f.opts.now().Add(evt.Expire).UTC()
			msg += fmt.Sprintf(" (until %s)", ev.Expires.Format(time.RFC3339))
		}
		e.onFatal(cli, ev, &wabsync.EngineError{Code: CodeTemporaryBan, Permanent: true, Message: msg})
	case *events.ClientOutdated:
		e.onFatal(cli, wabsync.EngineClientOutdated{}, &wabsync.EngineError{Code: CodeClientOutdated, Permanent: true,
			Message: "WhatsApp refuses this client version; WabSync's whatsmeow needs an update"})
	case *events.ConnectFailure:
		if evt.Reason.IsLoggedOut() {
			e.onLoggedOut(cli, connectFailureText(evt.Reason))
		} else {
			e.onRefused(cli, "WhatsApp refused the connection: "+connectFailureText(evt.Reason))
		}
	case *events.StreamError:
		e.log.Warn("whatsmeow: stream error", "code", evt.Code)
	case *events.QRScannedWithoutMultidevice:
		e.log.Info("whatsmeow: a phone without multi-device support scanned the QR code")
	case *events.QR, *events.HistorySync, *events.OfflineSyncPreview, *events.OfflineSyncCompleted:
		// QR codes come through the QR channel; history is not imported.
	default:
		e.log.Debug("whatsmeow: event ignored", "type", fmt.Sprintf("%T", raw))
	}
	return true
}

func (e *Engine) onPairSuccess(cli waClient, evt *events.PairSuccess) {
	dev := cli.Device()
	jid := evt.ID
	e.mu.Lock()
	e.deviceJID = jid.String()
	e.linking = false
	e.mu.Unlock()
	e.log.Info("whatsmeow: device linked", "device_jid", jid.String())
	_ = e.emit(wabsync.EnginePaired{DeviceJID: jid.String(), Phone: phoneOf(jid.ToNonAD()), PushName: dev.PushName})
}

func (e *Engine) onConnected(cli waClient) {
	dev := cli.Device()
	e.mu.Lock()
	e.connected = true
	e.connectedAt = e.f.opts.now()
	e.linking = false
	if dev.ID != nil {
		e.deviceJID = dev.ID.String()
	}
	if e.loginCh != nil {
		close(e.loginCh)
		e.loginCh = nil
	}
	e.pushName = dev.PushName
	e.mu.Unlock()
	e.log.Info("whatsmeow: connected")
	_ = e.emit(wabsync.EngineConnected{Phone: phoneOf(dev.GetJID().ToNonAD()), PushName: dev.PushName})
	e.settle(nil)
}

// onPushNameMaybeChanged reports a new push name (it arrives by app state
// sync, often only after the first login of a new link) as a repeated
// EngineConnected.
func (e *Engine) onPushNameMaybeChanged(cli waClient) {
	dev := cli.Device()
	e.mu.Lock()
	changed := e.connected && dev.PushName != "" && dev.PushName != e.pushName
	if changed {
		e.pushName = dev.PushName
	}
	e.mu.Unlock()
	if changed {
		_ = e.emit(wabsync.EngineConnected{Phone: phoneOf(dev.GetJID().ToNonAD()), PushName: dev.PushName})
	}
}

// onDisconnected handles a connection that ended without WhatsApp saying the
// link is gone. While a Connect waits for the login, the Connect call
// reports it; while linking, the QR channel does (as a link timeout). When
// no connection is up it is a late event of one already handled, and
// ignored.
func (e *Engine) onDisconnected(cli waClient, reason string) {
	e.mu.Lock()
	linking, connected, waiting := e.linking, e.connected, e.waiter != nil
	e.mu.Unlock()
	if linking || (!connected && !waiting) {
		e.log.Debug("whatsmeow: disconnect event without a live connection", "reason", reason)
		return
	}
	e.onRefused(cli, reason)
}

// onRefused ends the connection and reports reason: to a waiting Connect,
// else as wabsync.EngineDisconnected; a linking connection ends as linking
// does (wabsync.EngineLinkTimeout: connect again for new codes).
func (e *Engine) onRefused(cli waClient, reason string) {
	unlinked := cli.Device().ID == nil
	waiting, settle := e.stop(cli, unlinked)
	defer settle(connectFailed(reason, false))
	e.log.Info("whatsmeow: disconnected", "reason", reason)
	switch {
	case waiting:
		// the waiting Connect reports it
	case unlinked:
		_ = e.emit(wabsync.EngineLinkTimeout{})
	default:
		_ = e.emit(wabsync.EngineDisconnected{Reason: reason})
	}
}

// onKeepAliveTimeout drops a connection whose keep-alive pings failed for
// longer than whatsmeow.KeepAliveMaxFailTime (what whatsmeow's own
// auto-reconnect would do); shorter hiccups are only logged, since the
// connection often recovers.
func (e *Engine) onKeepAliveTimeout(cli waClient, evt *events.KeepAliveTimeout) {
	e.mu.Lock()
	since := e.connectedAt
	e.mu.Unlock()
	if evt.LastSuccess.Before(since) {
		return // a late event of an earlier connection
	}
	failing := e.f.opts.now().Sub(evt.LastSuccess)
	if evt.LastSuccess.IsZero() || failing <= whatsmeow.KeepAliveMaxFailTime {
		e.log.Warn("whatsmeow: keep-alive ping timed out", "errors", evt.ErrorCount)
		return
	}
	e.onDisconnected(cli, fmt.Sprintf("WhatsApp stopped answering keep-alive pings for %s", failing.Round(time.Second)))
}

// onLoggedOut handles the link being gone: the device and its keys are
// deleted from the store (whatsmeow does so too; deleting twice is fine).
func (e *Engine) onLoggedOut(cli waClient, reason string) {
	dev := cli.Device()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(e.ctx), 30*time.Second)
	defer cancel()
	if dev.ID != nil && !dev.Deleted {
		if err := dev.Delete(ctx); err != nil {
			e.log.Error("whatsmeow: delete device after logout", "err", err)
		}
	}
	e.mu.Lock()
	devJID := e.deviceJID
	e.deviceJID = ""
	e.pushName = ""
	e.mu.Unlock()
	if devJID != "" {
		if err := e.f.DeleteDevice(ctx, devJID); err != nil {
			e.log.Error("whatsmeow: delete device after logout", "err", err)
		}
	}
	e.log.Info("whatsmeow: logged out", "reason", reason)
	_, settle := e.stop(cli, true)
	_ = e.emit(wabsync.EngineLoggedOut{Reason: reason})
	settle(&wabsync.EngineError{Code: wabsync.MsgErrLoggedOut, Message: reason, Permanent: true})
}

// onFatal handles a connection WhatsApp ended for good (replaced, banned,
// outdated): report ev, then hand err to a waiting Connect.
func (e *Engine) onFatal(cli waClient, ev wabsync.EngineEvent, err *wabsync.EngineError) {
	e.log.Warn("whatsmeow: connection ended", "reason", err.Message)
	_, settle := e.stop(cli, cli.Device().ID == nil)
	_ = e.emit(ev)
	settle(err)
}

func loggedOutReason(evt *events.LoggedOut) string {
	if !evt.OnConnect {
		return "the device was removed on the phone"
	}
	return "WhatsApp ended the link: " + connectFailureText(evt.Reason)
}

// connectFailureText says what a connect failure reason means, for people.
func connectFailureText(r events.ConnectFailureReason) string {
	switch r {
	case events.ConnectFailureLoggedOut:
		return "logged out from another device (401)"
	case events.ConnectFailureMainDeviceGone:
		return "the phone's account was logged out or moved to another phone (403)"
	case events.ConnectFailureUnknownLogout:
		return "logged out by WhatsApp, the account may be banned (406)"
	case events.ConnectFailureTempBanned:
		return "the account is temporarily banned (402)"
	case events.ConnectFailureClientOutdated:
		return "the client version is outdated (405)"
	case events.ConnectFailureBadUserAgent:
		return "the client was rejected (409)"
	case events.ConnectFailureInternalServerError:
		return "WhatsApp had an internal error (500)"
	case events.ConnectFailureServiceUnavailable:
		return "WhatsApp is temporarily unavailable (503)"
	}
	return fmt.Sprintf("reason %d", int(r))
}

// --- data events ---

func (e *Engine) onMessage(cli waClient, evt *events.Message) bool {
	ctx := e.ctx
	msg, ok := e.inbound(ctx, cli, evt)
	if !ok {
		return true
	}
	return e.emit(wabsync.EngineMessage{Msg: *msg}) == nil
}

func (e *Engine) onReceipt(cli waClient, evt *events.Receipt) bool {
	var status wabsync.MessageStatus
	fromMe := evt.IsFromMe
	switch evt.Type {
	case types.ReceiptTypeDelivered, types.ReceiptTypeInactive:
		// "inactive" is a delivery receipt from a device not in the foreground.
		status = wabsync.MsgDelivered
	case types.ReceiptTypeRead, types.ReceiptTypeReadSelf:
		status = wabsync.MsgRead
	case types.ReceiptTypePlayed, types.ReceiptTypePlayedSelf:
		status = wabsync.MsgPlayed
	default:
		// sender (own devices got our message), retry (whatsmeow resends),
		// server-error, peer_msg, hist_sync: nothing to record.
		e.log.Debug("whatsmeow: receipt ignored", "type", string(evt.Type))
		return true
	}
	if evt.Type == types.ReceiptTypeReadSelf || evt.Type == types.ReceiptTypePlayedSelf {
		fromMe = true
	}
	if len(evt.MessageIDs) == 0 {
		return true
	}
	r := resolver{lids: cli.Device().LIDs}
	ctx := e.ctx
	from := r.identify(ctx, evt.Sender, evt.SenderAlt)
	ids := make([]string, len(evt.MessageIDs))
	copy(ids, evt.MessageIDs)
	at := evt.Timestamp
	if at.IsZero() {
		at = e.f.opts.now()
	}
	return e.emit(wabsync.EngineReceipt{
		Chat:   r.chatJID(ctx, evt.Chat, chatAlt(evt.MessageSource)),
		Sender: from.JID,
		WAIDs:  ids,
		Status: status,
		At:     at.UTC(),
		FromMe: fromMe,
	}) == nil
}

func (e *Engine) onUndecryptable(cli waClient, evt *events.UndecryptableMessage) bool {
	r := resolver{lids: cli.Device().LIDs}
	ctx := e.ctx
	from := r.identify(ctx, evt.Info.Sender, evt.Info.SenderAlt)
	e.log.Info("whatsmeow: undecryptable message", "wa_id", evt.Info.ID, "unavailable", evt.IsUnavailable)
	return e.emit(wabsync.EngineUndecryptable{
		WAID:      evt.Info.ID,
		Chat:      r.chatJID(ctx, evt.Info.Chat, chatAlt(evt.Info.MessageSource)),
		FromJID:   from.JID,
		FromLID:   from.LID,
		FromPhone: from.Phone,
		At:        evt.Info.Timestamp.UTC(),
	}) == nil
}

// Presence states of wabsync.EnginePresence and Engine.SendPresence.
const (
	PresenceTyping    = "typing"
	PresenceRecording = "recording"
	PresencePaused    = "paused"
)

func (e *Engine) onChatPresence(cli waClient, evt *events.ChatPresence) {
	state := PresencePaused
	if evt.State == types.ChatPresenceComposing {
		state = PresenceTyping
		if evt.Media == types.ChatPresenceMediaAudio {
			state = PresenceRecording
		}
	}
	r := resolver{lids: cli.Device().LIDs}
	ctx := e.ctx
	from := r.identify(ctx, evt.Sender, evt.SenderAlt)
	_ = e.emit(wabsync.EnginePresence{
		Chat:  r.chatJID(ctx, evt.Chat, chatAlt(evt.MessageSource)),
		From:  from.JID,
		State: state,
	})
}

// chatAlt is the alternative address of a direct chat's other party: the
// sender's for incoming messages, the recipient's for own messages.
func chatAlt(src types.MessageSource) types.JID {
	if src.IsGroup {
		return types.EmptyJID
	}
	if src.IsFromMe {
		return src.RecipientAlt
	}
	return src.SenderAlt
}
