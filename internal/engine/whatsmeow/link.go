package whatsmeow

import (
	"context"
	"errors"
	"time"

	"go.mau.fi/whatsmeow"

	"github.com/wabsync/wabsync"
)

// watchQR turns the QR channel into events until linking ends. first gets
// the outcome of the first item (nil once a first code was shown).
func (e *Engine) watchQR(ctx context.Context, cli waClient, qr <-chan whatsmeow.QRChannelItem, loginCh chan struct{}, first chan<- error) {
	firstDone := false
	report := func(err error) {
		if !firstDone {
			firstDone = true
			first <- err
		}
	}
	defer report(connectFailed("WhatsApp closed the connection before showing a QR code", false))
	for {
		var item whatsmeow.QRChannelItem
		var ok bool
		select {
		case item, ok = <-qr:
		case <-ctx.Done():
			return
		}
		if !ok {
			return
		}
		switch item.Event {
		case whatsmeow.QRChannelEventCode:
			if !e.current(cli) {
				return
			}
			_ = e.emit(wabsync.EngineQR{Code: item.Code, ExpiresAt: e.f.opts.now().Add(item.Timeout).UTC()})
			report(nil)
		case whatsmeow.QRChannelTimeout.Event:
			e.log.Info("whatsmeow: nobody linked the device in time")
			e.endLinking(cli)
			if firstDone {
				_ = e.emit(wabsync.EngineLinkTimeout{})
			}
			return
		case whatsmeow.QRChannelEventError:
			// There is no event for a failed link: it ends like one that
			// timed out (connect again for new codes), the cause is logged.
			e.log.Warn("whatsmeow: linking failed", "err", item.Error)
			e.endLinking(cli)
			if firstDone {
				_ = e.emit(wabsync.EngineLinkTimeout{})
			} else {
				report(connectFailed("linking failed: "+safeDetail(item.Error), false))
			}
			return
		case whatsmeow.QRChannelSuccess.Event:
			report(nil)
			e.awaitFirstLogin(ctx, cli, loginCh)
			return
		case whatsmeow.QRChannelScannedWithoutMultidevice.Event:
			e.log.Info("whatsmeow: QR code scanned by a phone without multi-device support")
		default:
			// err-unexpected-state, err-client-outdated: the events that
			// caused them reach onEvent too, which reports them.
			e.log.Debug("whatsmeow: QR channel ended", "event", item.Event)
			return
		}
	}
}

// awaitFirstLogin waits, after a successful pairing, for whatsmeow's own
// reconnect to log in. If it does not within the connect timeout, the
// connection is closed and linking reported as ended (EngineLinkTimeout);
// the device stays linked and the next Connect logs in.
func (e *Engine) awaitFirstLogin(ctx context.Context, cli waClient, loginCh chan struct{}) {
	t := time.NewTimer(e.f.opts.ConnectTimeout)
	defer t.Stop()
	select {
	case <-loginCh:
	case <-ctx.Done():
	case <-t.C:
		if !e.current(cli) {
			return
		}
		// The link is stored; the session's next Connect logs in. There is
		// no event for this, so it ends the linking like a timeout.
		e.log.Warn("whatsmeow: linked, but the first login did not complete")
		e.finish(cli, nil, false)
		_ = e.emit(wabsync.EngineLinkTimeout{})
	}
}

// endLinking closes a linking connection and drops its (unlinked) client.
func (e *Engine) endLinking(cli waClient) {
	e.finish(cli, nil, true)
}

// PairPhone asks WhatsApp for a code to link by typing it on the phone
// (phone: the account's number, E.164). The session must be waiting for a
// link (Connect showed QR codes); both ways stay open until one succeeds.
func (e *Engine) PairPhone(ctx context.Context, phone string) (string, error) {
	e.mu.Lock()
	cli, linking := e.client, e.linking
	e.mu.Unlock()
	if cli == nil || !linking || !cli.IsConnected() {
		return "", &wabsync.Error{Code: wabsync.EConflict, Message: "The session is not waiting for a link; connect it first."}
	}
	code, err := cli.PairPhone(ctx, digitsOnly(phone), true, whatsmeow.PairClientChrome, pairClientDisplayName)
	if err != nil {
		switch {
		case errors.Is(err, whatsmeow.ErrPhoneNumberTooShort), errors.Is(err, whatsmeow.ErrPhoneNumberIsNotInternational),
			errors.Is(err, whatsmeow.ErrIQBadRequest):
			return "", &wabsync.Error{Code: wabsync.EValidation, Message: "WhatsApp did not accept the phone number.",
				Details: map[string]string{"phone": "must be the account's phone number in E.164 form"}}
		case errors.Is(err, whatsmeow.ErrIQRateOverLimit):
			return "", &wabsync.EngineError{Code: wabsync.MsgErrRateLimited, Message: "WhatsApp rate-limited pair code requests; wait before asking again."}
		}
		e.log.Warn("whatsmeow: pair code", "err", err)
		return "", &wabsync.EngineError{Code: CodePairFailed, Message: "could not get a pair code from WhatsApp: " + safeDetail(err)}
	}
	return code, nil
}
