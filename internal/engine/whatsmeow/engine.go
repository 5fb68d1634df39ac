package whatsmeow

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/store"

	"github.com/wabsync/wabsync"
	"github.com/wabsync/wabsync/internal/safehttp"
)

// Engine is one session's link to WhatsApp through whatsmeow. It implements
// wabsync.Engine.
//
// The engine never reconnects by itself (whatsmeow's auto-reconnect is off):
// a dropped connection is reported as wabsync.EngineDisconnected and the
// session runtime calls Connect again with its own backoff. The only
// reconnect left to whatsmeow is the one WhatsApp asks for right after a new
// device is linked (stream error 515), which is part of linking.
//
// Events of a connection attempt reach the handler before Connect returns.
// The handler must therefore not call Connect, Disconnect, Logout or Close
// and wait for them: it may start them on another goroutine.
type Engine struct {
	f       *Factory
	opts    wabsync.EngineOptions
	log     *slog.Logger
	handler wabsync.EngineHandler

	ctx    context.Context // lives until Close
	cancel context.CancelFunc

	// opMu lets one of Connect, Disconnect, Logout and Close run at a time.
	opMu sync.Mutex
	// emitMu serialises calls of the handler: one event at a time, in order.
	emitMu sync.Mutex

	mu          sync.Mutex // guards the fields below
	client      waClient
	deviceJID   string
	connCancel  context.CancelFunc // ends the current connection
	linking     bool               // waiting for a QR scan or a pair code
	connected   bool               // logged in and online
	connectedAt time.Time          // when events.Connected came
	loginCh     chan struct{}      // closed on events.Connected
	waiter      chan error         // the Connect call waiting for the login outcome
	pushName    string             // last push name reported
	closed      bool
}

var _ wabsync.Engine = (*Engine)(nil)

// Error codes of connection failures (EngineError.Code from Connect).
const (
	// CodeConnectFailed: this attempt could not reach or log in to WhatsApp.
	CodeConnectFailed = "CONNECT_FAILED"
	// CodeTemporaryBan: WhatsApp banned the account for a while.
	CodeTemporaryBan = "TEMPORARY_BAN"
	// CodeClientOutdated: WhatsApp refuses this version of the protocol.
	CodeClientOutdated = "CLIENT_OUTDATED"
	// CodeStreamReplaced: another client took over the link.
	CodeStreamReplaced = "STREAM_REPLACED"
	// CodePairFailed: asking WhatsApp for a pair code failed.
	CodePairFailed = "PAIR_FAILED"
	// CodeMediaDownloadFailed: inbound media could not be downloaded.
	CodeMediaDownloadFailed = "MEDIA_DOWNLOAD_FAILED"
)

// pairClientDisplayName is the client shown while linking by code. WhatsApp
// accepts only "Browser (OS)" of common browsers and systems here; the name
// of the linked device afterwards is Options.DeviceName.
const pairClientDisplayName = "Chrome (Linux)"

func newEngine(f *Factory, o wabsync.EngineOptions) *Engine {
	logger := o.Logger
	if logger == nil {
		logger = f.logger
	}
	logger = logger.With("session_id", o.SessionID, "engine", wabsync.EngineWhatsmeow)
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{
		f:         f,
		opts:      o,
		log:       logger,
		handler:   o.Handler,
		ctx:       ctx,
		cancel:    cancel,
		deviceJID: o.DeviceJID,
	}
}

// linkedDevice returns the device JID of the linked account, or "" when not
// linked.
func (e *Engine) linkedDevice() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.deviceJID
}

// emit hands ev to the session's handler, one event at a time.
func (e *Engine) emit(ev wabsync.EngineEvent) error {
	e.emitMu.Lock()
	defer e.emitMu.Unlock()
	err := e.handler(e.ctx, ev)
	if err != nil {
		e.log.Warn("whatsmeow: event handler failed", "event", fmt.Sprintf("%T", ev), "err", err)
	}
	return err
}

func connectFailed(msg string, permanent bool) *wabsync.EngineError {
	return &wabsync.EngineError{Code: CodeConnectFailed, Message: msg, Permanent: permanent}
}

var errEngineClosed = connectFailed("the engine is closed", true)

// unreachable says why a connection attempt could not reach WhatsApp, in
// fixed words: never the error's own text, which can carry what a remote
// sent (a proxy's answer, or whatever listens at the proxy's address).
func (e *Engine) unreachable(err error) string {
	via := "could not reach WhatsApp: "
	if e.opts.Config.Proxy != "" {
		via = "could not reach WhatsApp through the proxy: "
	}
	return via + dialFailure(err)
}

// dialFailure classifies a failed dial or handshake.
func dialFailure(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, safehttp.ErrBlockedAddress):
		return "its address is not allowed (loopback, private, link-local or reserved)"
	case errors.As(err, &dnsErr):
		return "a host name did not resolve"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the connection was refused"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "the network is unreachable"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "the connection timed out"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "the connection was closed"
	case errors.As(err, &recErr):
		return "the answer was not TLS"
	}
	return "the connection or its handshake failed"
}

// Connect opens the connection to WhatsApp.
//
// For a device that is not linked it dials, then waits for the first QR code
// and returns nil; wabsync.EngineQR events follow as the codes rotate, then
// wabsync.EnginePaired and wabsync.EngineConnected once the phone scanned a
// code (or entered a pair code), or wabsync.EngineLinkTimeout when nobody did.
//
// For a linked device it dials and waits for WhatsApp's answer to the login:
// nil once connected (wabsync.EngineConnected is also emitted). When
// WhatsApp refuses the login for good, the matching event is emitted
// (wabsync.EngineLoggedOut, EngineTemporaryBan, EngineClientOutdated,
// EngineStreamReplaced) and Connect returns a permanent *wabsync.EngineError.
//
// Any other failure within Options.ConnectTimeout — no route to WhatsApp, a
// refused handshake, no answer — returns a *wabsync.EngineError with code
// CONNECT_FAILED that is not permanent, and nothing is left running.
func (e *Engine) Connect(ctx context.Context) error {
	e.opMu.Lock()
	after, err := e.connect(ctx)
	e.opMu.Unlock()
	for _, ev := range after {
		_ = e.emit(ev)
	}
	return err
}

func (e *Engine) connect(ctx context.Context) (after []wabsync.EngineEvent, err error) {
	e.mu.Lock()
	closed := e.closed
	e.mu.Unlock()
	if closed {
		return nil, errEngineClosed
	}
	cli, after, err := e.ensureClient(ctx)
	if err != nil {
		return after, err
	}
	if cli.IsConnected() {
		return nil, nil // already connected, or already showing QR codes
	}
	linked := cli.Device().ID != nil

	connCtx, connCancel := context.WithCancel(e.ctx)
	timer := time.AfterFunc(e.f.opts.ConnectTimeout, connCancel)
	stopWatch := context.AfterFunc(ctx, connCancel)
	// stopAttemptTimers keeps the connection alive past the attempt; false
	// when the timeout or the caller's context ended it already.
	stopAttemptTimers := func() bool {
		t := timer.Stop()
		w := stopWatch()
		return t && w && connCtx.Err() == nil
	}
	fail := func(msg string) ([]wabsync.EngineEvent, error) {
		stopAttemptTimers()
		connCancel()
		e.finish(cli, nil, !linked)
		return nil, connectFailed(msg, false)
	}
	// timedOut reports an attempt whose context ended: by the timeout, by
	// the caller's context, or by Disconnect or Close.
	timedOut := func(what string) ([]wabsync.EngineEvent, error) {
		timerFired := !timer.Stop()
		switch {
		case ctx.Err() != nil:
			return fail("the connection attempt was cancelled")
		case !timerFired:
			return fail("the connection attempt was stopped")
		}
		return fail(fmt.Sprintf("could not reach WhatsApp: no %s within %s", what, e.f.opts.ConnectTimeout))
	}

	var qr <-chan whatsmeow.QRChannelItem
	if !linked {
		qr, err = cli.GetQRChannel(connCtx)
		if err != nil {
			e.log.Warn("whatsmeow: QR channel", "err", err)
			return fail("could not start linking: " + safeDetail(err))
		}
	}
	waiter := make(chan error, 1)
	loginCh := make(chan struct{})
	e.mu.Lock()
	e.connCancel = connCancel
	e.linking = !linked
	e.connected = false
	e.loginCh = loginCh
	if linked {
		e.waiter = waiter
	}
	e.mu.Unlock()

	e.log.Debug("whatsmeow: connecting", "linked", linked)
	if err = cli.ConnectContext(connCtx); err != nil {
		e.clearWaiter(waiter)
		if connCtx.Err() != nil {
			return timedOut("answer")
		}
		// Not the error's text: it can carry what the proxy answered.
		why := e.unreachable(err)
		e.log.Info("whatsmeow: connect failed", "why", why, "err_type", fmt.Sprintf("%T", err))
		return fail(why)
	}

	if !linked {
		first := make(chan error, 1)
		go e.watchQR(connCtx, cli, qr, loginCh, first)
		err, ok := receiveOrDone(connCtx, first)
		if !ok {
			return timedOut("QR code")
		}
		if err != nil {
			stopAttemptTimers()
			return nil, err
		}
		if !stopAttemptTimers() {
			return timedOut("QR code")
		}
		return nil, nil
	}

	outcome, ok := receiveOrDone(connCtx, waiter)
	if !ok {
		e.clearWaiter(waiter)
		return timedOut("answer to the login")
	}
	if outcome != nil {
		// The event handler that failed the login reset the state and
		// reported the event.
		stopAttemptTimers()
		return nil, outcome
	}
	if !stopAttemptTimers() {
		return timedOut("login")
	}
	return nil, nil
}

// receiveOrDone receives from ch unless ctx ends first. When both are ready
// the value wins: an outcome sent just before the context was cancelled is
// never mistaken for a timeout.
func receiveOrDone[T any](ctx context.Context, ch <-chan T) (T, bool) {
	select {
	case v := <-ch:
		return v, true
	case <-ctx.Done():
		select {
		case v := <-ch:
			return v, true
		default:
			var zero T
			return zero, false
		}
	}
}

// ensureClient returns the client for the next connection: the current one
// when the device is linked, else a fresh one (an unlinked client is never
// reused, so that nothing of an earlier linking attempt survives).
func (e *Engine) ensureClient(ctx context.Context) (waClient, []wabsync.EngineEvent, error) {
	e.mu.Lock()
	cli, devJID := e.client, e.deviceJID
	e.mu.Unlock()
	if cli != nil {
		dev := cli.Device()
		if !dev.Deleted && (dev.ID != nil || cli.IsConnected()) {
			return cli, nil, nil // linked, or still showing QR codes
		}
		e.finish(cli, nil, true)
	}
	dev, err := e.f.loadDevice(ctx, devJID)
	if err != nil {
		e.log.Error("whatsmeow: load device", "err", err)
		return nil, nil, connectFailed("could not read the device store", false)
	}
	if dev == nil {
		// The session thinks it is linked, but the keys are gone (logged out
		// while this server was down, or deleted by hand).
		e.mu.Lock()
		e.deviceJID = ""
		e.mu.Unlock()
		reason := "the device's keys are no longer stored"
		return nil, []wabsync.EngineEvent{wabsync.EngineLoggedOut{Reason: reason}},
			&wabsync.EngineError{Code: wabsync.MsgErrLoggedOut, Message: reason, Permanent: true}
	}
	cli, err = e.f.opts.newClient(dev, clientConfig{
		DeviceName:        e.f.deviceName(e.opts.Name),
		Proxy:             e.opts.Config.Proxy,
		AllowPrivateProxy: e.f.opts.AllowPrivateProxy,
		Logger:            newWALogger(e.log, ""),
	})
	if err != nil {
		return nil, nil, connectFailed("could not set up the client: "+safeDetail(err), true)
	}
	cli.AddEventHandlerWithSuccessStatus(func(evt any) bool { return e.onEvent(cli, evt) })
	e.mu.Lock()
	e.client = cli
	e.mu.Unlock()
	return cli, nil, nil
}

// current reports whether cli is the engine's client (events of a client
// dropped earlier are ignored).
func (e *Engine) current(cli waClient) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.client == cli && !e.closed
}

// stop ends the current connection of cli: it resets the engine's
// connection state and disconnects the client. discard also drops the
// client (an unlinked one, or one whose device is gone). waiting says
// whether a Connect waits for the login's outcome; settle hands it one, then
// cancels the connection's context. Event handlers report their event
// between the two, so that a Connect returns only after the events of its
// attempt were handled. Events of a client that is no longer the engine's
// change nothing but that client.
func (e *Engine) stop(cli waClient, discard bool) (waiting bool, settle func(outcome error)) {
	e.mu.Lock()
	if e.client != cli {
		e.mu.Unlock()
		cli.Disconnect()
		return false, func(error) {}
	}
	cancel, w := e.connCancel, e.waiter
	e.connCancel, e.waiter = nil, nil
	e.linking, e.connected = false, false
	if discard {
		e.client = nil
	}
	e.mu.Unlock()
	cli.Disconnect()
	return w != nil, func(outcome error) {
		if w != nil {
			w <- outcome // buffered; before cancel, so that Connect sees the outcome
		}
		if cancel != nil {
			cancel()
		}
	}
}

// finish is stop and settle at once.
func (e *Engine) finish(cli waClient, outcome error, discard bool) (waited bool) {
	waiting, settle := e.stop(cli, discard)
	settle(outcome)
	return waiting
}

func (e *Engine) clearWaiter(w chan error) {
	e.mu.Lock()
	if e.waiter == w {
		e.waiter = nil
	}
	e.mu.Unlock()
}

// settle hands a successful login to a waiting Connect. It reports whether
// a Connect was waiting.
func (e *Engine) settle(err error) bool {
	e.mu.Lock()
	w := e.waiter
	e.waiter = nil
	e.mu.Unlock()
	if w == nil {
		return false
	}
	w <- err
	return true
}

// Disconnect closes the connection and keeps the link. It aborts a Connect
// in progress. It is idempotent.
func (e *Engine) Disconnect() {
	e.abortAttempt()
	e.opMu.Lock()
	defer e.opMu.Unlock()
	e.mu.Lock()
	cli, linking := e.client, e.linking
	e.mu.Unlock()
	if cli == nil {
		return
	}
	e.finish(cli, nil, linking || cli.Device().ID == nil)
}

// abortAttempt ends the current connection's context, so that a Connect in
// progress returns at once.
func (e *Engine) abortAttempt() {
	e.mu.Lock()
	c := e.connCancel
	e.mu.Unlock()
	if c != nil {
		c()
	}
}

// Logout unlinks the device: when connected it tells WhatsApp (the phone
// drops the device from its list), then it deletes the device and its keys
// from the store. When not connected the keys are deleted all the same and
// the phone drops the device later by itself; Logout does not fail for that.
func (e *Engine) Logout(ctx context.Context) error {
	e.abortAttempt()
	e.opMu.Lock()
	defer e.opMu.Unlock()
	e.mu.Lock()
	cli, devJID := e.client, e.deviceJID
	e.mu.Unlock()

	if cli != nil {
		dev := cli.Device()
		if dev.ID != nil && !dev.Deleted && cli.IsLoggedIn() {
			if err := cli.Logout(ctx); err != nil {
				e.log.Warn("whatsmeow: could not tell WhatsApp about the logout; deleting the keys anyway", "err", err)
			}
		}
		e.finish(cli, nil, true)
		if dev.ID != nil && !dev.Deleted {
			if err := dev.Delete(ctx); err != nil {
				return fmt.Errorf("whatsmeow: delete device: %w", err)
			}
		}
	}
	if devJID != "" {
		if err := e.f.DeleteDevice(ctx, devJID); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.deviceJID = ""
	e.pushName = ""
	e.mu.Unlock()
	return nil
}

// Close disconnects and releases the engine. It is idempotent; the engine
// is not used after.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.abortAttempt()
	e.cancel()
	e.opMu.Lock()
	defer e.opMu.Unlock()
	e.mu.Lock()
	cli := e.client
	e.client = nil
	e.connCancel = nil
	e.linking, e.connected = false, false
	e.mu.Unlock()
	if cli != nil {
		cli.Disconnect()
	}
	return nil
}

// loggedInClient returns the client when it is logged in, else an
// EngineError saying the session is not connected.
func (e *Engine) loggedInClient() (waClient, *store.Device, error) {
	e.mu.Lock()
	cli := e.client
	e.mu.Unlock()
	if cli == nil || !cli.IsLoggedIn() {
		return nil, nil, &wabsync.EngineError{Code: wabsync.ESessionNotConnected, Message: "the session is not connected to WhatsApp"}
	}
	return cli, cli.Device(), nil
}
