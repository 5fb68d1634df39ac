package whatsmeow

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waSyncAction"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/proto"

	"github.com/wabsync/wabsync"
)

func TestReceipts(t *testing.T) {
	dmFromBob := types.MessageSource{Chat: bobPN, Sender: bobPN, SenderAlt: bobLID}
	tests := []struct {
		name string
		evt  *events.Receipt
		want wabsync.EngineEvent // nil: not reported
	}{
		{"Delivered", &events.Receipt{MessageSource: dmFromBob, MessageIDs: []string{"O1", "O2"}, Timestamp: msgTime, Type: types.ReceiptTypeDelivered},
			wabsync.EngineReceipt{Chat: bobPN.String(), Sender: bobPN.String(), WAIDs: []string{"O1", "O2"}, Status: wabsync.MsgDelivered, At: msgTime}},
		{"Inactive", &events.Receipt{MessageSource: dmFromBob, MessageIDs: []string{"O1"}, Timestamp: msgTime, Type: types.ReceiptTypeInactive},
			wabsync.EngineReceipt{Chat: bobPN.String(), Sender: bobPN.String(), WAIDs: []string{"O1"}, Status: wabsync.MsgDelivered, At: msgTime}},
		{"Read", &events.Receipt{MessageSource: dmFromBob, MessageIDs: []string{"O1"}, Timestamp: msgTime, Type: types.ReceiptTypeRead},
			wabsync.EngineReceipt{Chat: bobPN.String(), Sender: bobPN.String(), WAIDs: []string{"O1"}, Status: wabsync.MsgRead, At: msgTime}},
		{"Played", &events.Receipt{MessageSource: dmFromBob, MessageIDs: []string{"V1"}, Timestamp: msgTime, Type: types.ReceiptTypePlayed},
			wabsync.EngineReceipt{Chat: bobPN.String(), Sender: bobPN.String(), WAIDs: []string{"V1"}, Status: wabsync.MsgPlayed, At: msgTime}},
		{"ReadInGroupByLID",
			&events.Receipt{MessageSource: types.MessageSource{Chat: group, Sender: carolLD, SenderAlt: carolPN, IsGroup: true},
				MessageIDs: []string{"G1"}, Timestamp: msgTime, Type: types.ReceiptTypeRead},
			wabsync.EngineReceipt{Chat: group.String(), Sender: carolPN.String(), WAIDs: []string{"G1"}, Status: wabsync.MsgRead, At: msgTime}},
		{"DMAddressedByLID",
			&events.Receipt{MessageSource: types.MessageSource{Chat: bobLID, Sender: mustJID("88800000000111:2@lid")},
				MessageIDs: []string{"O3"}, Timestamp: msgTime, Type: types.ReceiptTypeRead},
			wabsync.EngineReceipt{Chat: bobPN.String(), Sender: bobPN.String(), WAIDs: []string{"O3"}, Status: wabsync.MsgRead, At: msgTime}},
		{"ReadOnOwnOtherDevice",
			&events.Receipt{MessageSource: types.MessageSource{Chat: bobPN, Sender: ownDevice, IsFromMe: true},
				MessageIDs: []string{"I1"}, Timestamp: msgTime, Type: types.ReceiptTypeRead},
			wabsync.EngineReceipt{Chat: bobPN.String(), Sender: "14155550100@s.whatsapp.net", WAIDs: []string{"I1"}, Status: wabsync.MsgRead, At: msgTime, FromMe: true}},
		{"ReadSelf",
			&events.Receipt{MessageSource: types.MessageSource{Chat: bobPN, Sender: ownDevice},
				MessageIDs: []string{"I2"}, Timestamp: msgTime, Type: types.ReceiptTypeReadSelf},
			wabsync.EngineReceipt{Chat: bobPN.String(), Sender: "14155550100@s.whatsapp.net", WAIDs: []string{"I2"}, Status: wabsync.MsgRead, At: msgTime, FromMe: true}},
		{"SenderIgnored", &events.Receipt{MessageSource: dmFromBob, MessageIDs: []string{"O1"}, Type: types.ReceiptTypeSender}, nil},
		{"RetryIgnored", &events.Receipt{MessageSource: dmFromBob, MessageIDs: []string{"O1"}, Type: types.ReceiptTypeRetry}, nil},
		{"ServerErrorIgnored", &events.Receipt{MessageSource: dmFromBob, MessageIDs: []string{"O1"}, Type: types.ReceiptTypeServerError}, nil},
		{"HistorySyncIgnored", &events.Receipt{MessageSource: dmFromBob, MessageIDs: []string{"O1"}, Type: types.ReceiptTypeHistorySync}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true)
			h.putLID(t, bobLID.String(), bobPN.String())
			if !h.fake.fire(tt.evt) {
				t.Fatal("handler failed")
			}
			checkEvents(t, h.rec.all(), tt.want)
		})
	}
}

func checkEvents(t *testing.T, got []wabsync.EngineEvent, want ...wabsync.EngineEvent) {
	t.Helper()
	var w []wabsync.EngineEvent
	for _, e := range want {
		if e != nil {
			w = append(w, e)
		}
	}
	if len(got) == 0 && len(w) == 0 {
		return
	}
	if !reflect.DeepEqual(got, w) {
		t.Fatalf("got\n%swant\n%s", fmtEvents(got), fmtEvents(w))
	}
}

func TestDataEvents(t *testing.T) {
	tests := []struct {
		name string
		evt  any
		want wabsync.EngineEvent
	}{
		{"Undecryptable", &events.UndecryptableMessage{Info: inGroup("U1"), IsUnavailable: true},
			wabsync.EngineUndecryptable{WAID: "U1", Chat: group.String(), FromJID: carolPN.String(), FromLID: carolLD.String(), FromPhone: "+14155550122", At: msgTime}},
		{"Typing", &events.ChatPresence{MessageSource: types.MessageSource{Chat: bobPN, Sender: bobPN}, State: types.ChatPresenceComposing},
			wabsync.EnginePresence{Chat: bobPN.String(), From: bobPN.String(), State: "typing"}},
		{"Recording", &events.ChatPresence{MessageSource: types.MessageSource{Chat: bobLID, Sender: bobLID}, State: types.ChatPresenceComposing, Media: types.ChatPresenceMediaAudio},
			wabsync.EnginePresence{Chat: bobPN.String(), From: bobPN.String(), State: "recording"}},
		{"PausedInGroup", &events.ChatPresence{MessageSource: types.MessageSource{Chat: group, Sender: carolLD, SenderAlt: carolPN, IsGroup: true}, State: types.ChatPresencePaused},
			wabsync.EnginePresence{Chat: group.String(), From: carolPN.String(), State: "paused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true)
			h.putLID(t, bobLID.String(), bobPN.String())
			if !h.fake.fire(tt.evt) {
				t.Fatal("handler failed")
			}
			checkEvents(t, h.rec.all(), tt.want)
		})
	}
}

// Connection events of a linked, connected session.
func TestConnectionEvents(t *testing.T) {
	tests := []struct {
		name string
		evt  any
		want wabsync.EngineEvent
		// after the event: is the device still stored, the client connected?
		deviceGone, disconnected bool
	}{
		{name: "Connected", evt: &events.Connected{}, want: wabsync.EngineConnected{Phone: "+14155550100", PushName: "Alice"}},
		{name: "Disconnected", evt: &events.Disconnected{}, want: wabsync.EngineDisconnected{Reason: "WhatsApp closed the connection"}, disconnected: true},
		{name: "KeepAliveHiccup", evt: &events.KeepAliveTimeout{ErrorCount: 1, LastSuccess: fixedNow.Add(-40 * time.Second)}},
		{name: "KeepAliveDead", evt: &events.KeepAliveTimeout{ErrorCount: 7, LastSuccess: fixedNow.Add(-4 * time.Minute)},
			want: wabsync.EngineDisconnected{Reason: "WhatsApp stopped answering keep-alive pings for 4m0s"}, disconnected: true},
		{name: "KeepAliveRestored", evt: &events.KeepAliveRestored{}},
		{name: "LoggedOutFromPhone", evt: &events.LoggedOut{OnConnect: false, Reason: events.ConnectFailureLoggedOut},
			want: wabsync.EngineLoggedOut{Reason: "the device was removed on the phone"}, deviceGone: true, disconnected: true},
		{name: "LoggedOutOnConnect", evt: &events.LoggedOut{OnConnect: true, Reason: events.ConnectFailureMainDeviceGone},
			want:       wabsync.EngineLoggedOut{Reason: "WhatsApp ended the link: the phone's account was logged out or moved to another phone (403)"},
			deviceGone: true, disconnected: true},
		{name: "StreamReplaced", evt: &events.StreamReplaced{}, want: wabsync.EngineStreamReplaced{}, disconnected: true},
		{name: "TemporaryBan", evt: &events.TemporaryBan{Code: events.TempBanSentToTooManyPeople, Expire: time.Hour},
			want: wabsync.EngineTemporaryBan{Reason: events.TempBanSentToTooManyPeople.String(), Expires: fixedNow.Add(time.Hour)}, disconnected: true},
		{name: "TemporaryBanNoExpiry", evt: &events.TemporaryBan{Code: events.TempBanBlockedByUsers},
			want: wabsync.EngineTemporaryBan{Reason: events.TempBanBlockedByUsers.String()}, disconnected: true},
		{name: "ClientOutdated", evt: &events.ClientOutdated{}, want: wabsync.EngineClientOutdated{}, disconnected: true},
		{name: "ConnectFailureLoggedOut", evt: &events.ConnectFailure{Reason: events.ConnectFailureUnknownLogout},
			want:       wabsync.EngineLoggedOut{Reason: "logged out by WhatsApp, the account may be banned (406)"},
			deviceGone: true, disconnected: true},
		{name: "ConnectFailureOther", evt: &events.ConnectFailure{Reason: events.ConnectFailureBadUserAgent},
			want: wabsync.EngineDisconnected{Reason: "WhatsApp refused the connection: the client was rejected (409)"}, disconnected: true},
		{name: "StreamErrorLogged", evt: &events.StreamError{Code: "999"}},
		{name: "HistorySyncIgnored", evt: &events.HistorySync{}},
		{name: "PushNameUnchanged", evt: &events.PushNameSetting{Action: &waSyncAction.PushNameSetting{Name: proto.String("Alice")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true)
			if tt.name == "Connected" {
				h.e.mu.Lock()
				h.e.connected = false
				h.e.mu.Unlock()
			}
			if !h.fake.fire(tt.evt) {
				t.Fatal("handler failed")
			}
			checkEvents(t, h.rec.all(), tt.want)
			dev, err := h.f.container.GetDevice(context.Background(), ownDevice)
			if err != nil {
				t.Fatal(err)
			}
			if gone := dev == nil; gone != tt.deviceGone {
				t.Errorf("device gone = %v, want %v", gone, tt.deviceGone)
			}
			if tt.deviceGone && h.e.linkedDevice() != "" {
				t.Errorf("engine still has device %q", h.e.linkedDevice())
			}
			if disc := !h.fake.IsConnected(); disc != tt.disconnected {
				t.Errorf("disconnected = %v, want %v", disc, tt.disconnected)
			}
		})
	}
}

// The push name arrives by app state sync after a new link's first login.
func TestPushNameArrivesLater(t *testing.T) {
	h := newHarness(t, true)
	h.fake.dev.PushName = "Alice B."
	h.fake.fire(&events.AppStateSyncComplete{Name: "critical_block"})
	h.fake.fire(&events.AppStateSyncComplete{Name: "regular"}) // no change: nothing
	checkEvents(t, h.rec.all(), wabsync.EngineConnected{Phone: "+14155550100", PushName: "Alice B."})
}

// Linking by QR code, then by pair code, against the fake: codes become
// EngineQR events with whatsmeow's per-code timeout, PairSuccess becomes
// EnginePaired, the login after it EngineConnected.
func TestLinking(t *testing.T) {
	h := newHarness(t, false)
	h.setup = func(c *fakeClient) {
		c.pairCode = "ABCD-EFGH"
		c.onConnect = func(c *fakeClient) {
			c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@first", Timeout: 60 * time.Second}
		}
	}
	if _, err := h.e.PairPhone(context.Background(), "+14155550100"); !isAPIError(err, wabsync.EConflict) {
		t.Fatalf("PairPhone before Connect = %v, want CONFLICT", err)
	}
	if err := h.e.Connect(context.Background()); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	checkEvents(t, h.rec.all(), wabsync.EngineQR{Code: "2@first", ExpiresAt: fixedNow.Add(60 * time.Second)})
	fake := h.current()
	fake.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@second", Timeout: 20 * time.Second}
	h.rec.waitFor(t, "second QR", func(ev wabsync.EngineEvent) bool { q, ok := ev.(wabsync.EngineQR); return ok && q.Code == "2@second" })

	code, err := h.e.PairPhone(context.Background(), "+1 (415) 555-0100")
	if err != nil || code != "ABCD-EFGH" {
		t.Fatalf("PairPhone = %q, %v", code, err)
	}
	if fake.pairPhone != "14155550100|1|Chrome (Linux)" {
		t.Fatalf("PairPhone call = %q", fake.pairPhone)
	}

	// The phone entered the code: whatsmeow stores the device, then
	// reports success, then logs in again by itself.
	jid := ownDevice
	fake.dev.ID = &jid
	fake.dev.PushName = ""
	fake.fire(&events.PairSuccess{ID: ownDevice, LID: ownLID, Platform: "android"})
	fake.qr <- whatsmeow.QRChannelSuccess
	close(fake.qr)
	fake.mu.Lock()
	fake.loggedIn = true
	fake.mu.Unlock()
	fake.fire(&events.Connected{})
	h.rec.waitFor(t, "connected", func(ev wabsync.EngineEvent) bool { _, ok := ev.(wabsync.EngineConnected); return ok })
	checkEvents(t, h.rec.all(),
		wabsync.EngineQR{Code: "2@first", ExpiresAt: fixedNow.Add(60 * time.Second)},
		wabsync.EngineQR{Code: "2@second", ExpiresAt: fixedNow.Add(20 * time.Second)},
		wabsync.EnginePaired{DeviceJID: "14155550100:7@s.whatsapp.net", Phone: "+14155550100"},
		wabsync.EngineConnected{Phone: "+14155550100"},
	)
	if h.e.linkedDevice() != "14155550100:7@s.whatsapp.net" {
		t.Fatalf("DeviceJID = %q", h.e.linkedDevice())
	}
}

func isAPIError(err error, code string) bool {
	var e *wabsync.Error
	return errors.As(err, &e) && e.Code == code
}

func isEngineError(err error, code string, permanent bool) bool {
	var e *wabsync.EngineError
	return errors.As(err, &e) && e.Code == code && e.Permanent == permanent
}

// Nobody scanned: the channel's timeout becomes EngineLinkTimeout, the
// unlinked client is dropped, and the next Connect starts afresh.
func TestLinkTimeout(t *testing.T) {
	h := newHarness(t, false)
	h.setup = func(c *fakeClient) {
		c.onConnect = func(c *fakeClient) {
			c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@a", Timeout: time.Minute}
		}
	}
	if err := h.e.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := h.current()
	first.qr <- whatsmeow.QRChannelTimeout
	h.rec.waitFor(t, "link timeout", func(ev wabsync.EngineEvent) bool { _, ok := ev.(wabsync.EngineLinkTimeout); return ok })
	if first.IsConnected() {
		t.Fatal("client still connected after the link timeout")
	}
	// A Disconnected event of the old client changes nothing.
	first.fire(&events.Disconnected{})
	if err := h.e.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.current() == first {
		t.Fatal("the unlinked client was reused")
	}
	checkEvents(t, h.rec.all(),
		wabsync.EngineQR{Code: "2@a", ExpiresAt: fixedNow.Add(time.Minute)},
		wabsync.EngineLinkTimeout{},
		wabsync.EngineQR{Code: "2@a", ExpiresAt: fixedNow.Add(time.Minute)},
	)
}

// A pairing error after the codes were shown ends the linking attempt (as
// EngineLinkTimeout: there is no event for a failed link); before the first
// code it fails Connect.
func TestLinkError(t *testing.T) {
	h := newHarness(t, false)
	h.setup = func(c *fakeClient) {
		c.onConnect = func(c *fakeClient) {
			c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventError, Error: errors.New("invalid device signature in pair success message")}
		}
	}
	err := h.e.Connect(context.Background())
	if !isEngineError(err, CodeConnectFailed, false) {
		t.Fatalf("Connect = %v", err)
	}
	h.setup = func(c *fakeClient) {
		c.onConnect = func(c *fakeClient) {
			c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@a", Timeout: time.Minute}
		}
	}
	if err := h.e.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	fake := h.current()
	fake.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventError, Error: errors.New("invalid device signature in pair success message")}
	h.rec.waitFor(t, "link timeout", func(ev wabsync.EngineEvent) bool { _, ok := ev.(wabsync.EngineLinkTimeout); return ok })
	if fake.IsConnected() || h.e.current(fake) {
		t.Fatal("the linking client was kept")
	}
}

// A linked device's Connect waits for WhatsApp's answer to the login.
func TestConnectLinked(t *testing.T) {
	tests := []struct {
		name      string
		answer    any // fired by the "server" after the handshake; nil: silence
		wantErr   string
		permanent bool
		want      wabsync.EngineEvent
	}{
		{name: "Connected", answer: &events.Connected{}, want: wabsync.EngineConnected{Phone: "+14155550100", PushName: "Alice"}},
		{name: "LoggedOut", answer: &events.LoggedOut{OnConnect: true, Reason: events.ConnectFailureLoggedOut},
			wantErr: wabsync.MsgErrLoggedOut, permanent: true,
			want: wabsync.EngineLoggedOut{Reason: "WhatsApp ended the link: logged out from another device (401)"}},
		{name: "TemporaryBan", answer: &events.TemporaryBan{Code: events.TempBanSentToTooManyPeople, Expire: 2 * time.Hour},
			wantErr: CodeTemporaryBan, permanent: true,
			want: wabsync.EngineTemporaryBan{Reason: events.TempBanSentToTooManyPeople.String(), Expires: fixedNow.Add(2 * time.Hour)}},
		{name: "ClientOutdated", answer: &events.ClientOutdated{}, wantErr: CodeClientOutdated, permanent: true, want: wabsync.EngineClientOutdated{}},
		{name: "StreamReplaced", answer: &events.StreamReplaced{}, wantErr: CodeStreamReplaced, permanent: true, want: wabsync.EngineStreamReplaced{}},
		// A dropped connection during the login is the Connect's failure,
		// not a separate event.
		{name: "Disconnected", answer: &events.Disconnected{}, wantErr: CodeConnectFailed},
		{name: "Refused", answer: &events.ConnectFailure{Reason: events.ConnectFailureBadUserAgent}, wantErr: CodeConnectFailed},
		{name: "NoAnswer", wantErr: CodeConnectFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true, withTimeout(300*time.Millisecond))
			fake := h.current()
			fake.mu.Lock()
			fake.connected, fake.loggedIn = false, false
			fake.onConnect = func(c *fakeClient) {
				if tt.answer == nil {
					return
				}
				go func() {
					if _, ok := tt.answer.(*events.Connected); ok {
						c.mu.Lock()
						c.loggedIn = true
						c.mu.Unlock()
					}
					c.fire(tt.answer)
				}()
			}
			fake.mu.Unlock()
			err := h.e.Connect(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Connect = %v", err)
				}
			} else if !isEngineError(err, tt.wantErr, tt.permanent) {
				t.Fatalf("Connect = %v, want %s (permanent %v)", err, tt.wantErr, tt.permanent)
			}
			checkEvents(t, h.rec.all(), tt.want)
			if tt.wantErr != "" && fake.IsConnected() {
				t.Error("still connected after a failed Connect")
			}
		})
	}
}

// The session believes it is linked but the device's keys are gone.
func TestConnectDeviceMissing(t *testing.T) {
	h := newHarness(t, false, withDevice(ownDevice.String()))
	h.setup = func(c *fakeClient) {
		c.onConnect = func(c *fakeClient) {
			c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@new", Timeout: time.Minute}
		}
	}
	err := h.e.Connect(context.Background())
	if !isEngineError(err, wabsync.MsgErrLoggedOut, true) {
		t.Fatalf("Connect = %v", err)
	}
	checkEvents(t, h.rec.all(), wabsync.EngineLoggedOut{Reason: "the device's keys are no longer stored"})
	// Connecting again links anew.
	if err := h.e.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.rec.waitFor(t, "QR", func(ev wabsync.EngineEvent) bool { _, ok := ev.(wabsync.EngineQR); return ok })
}

func TestLogout(t *testing.T) {
	t.Run("Connected", func(t *testing.T) {
		h := newHarness(t, true)
		fake := h.current()
		if err := h.e.Logout(context.Background()); err != nil {
			t.Fatal(err)
		}
		if fake.logouts != 1 {
			t.Fatalf("WhatsApp was told %d times", fake.logouts)
		}
		assertDeviceGone(t, h)
		if fake.IsConnected() {
			t.Fatal("still connected")
		}
	})
	t.Run("RemoteLogoutFails", func(t *testing.T) {
		h := newHarness(t, true)
		h.current().logoutErr = errors.New("info query timed out")
		if err := h.e.Logout(context.Background()); err != nil {
			t.Fatal(err)
		}
		assertDeviceGone(t, h)
	})
	t.Run("NeverConnected", func(t *testing.T) {
		h := newHarness(t, false)
		mustLinkedDevice(t, h.f, ownDevice, "Alice")
		e, err := h.f.newEngine(wabsync.EngineOptions{SessionID: "s2", Handler: h.rec.handle, DeviceJID: ownDevice.String()})
		if err != nil {
			t.Fatal(err)
		}
		h.e = e
		if err := e.Logout(context.Background()); err != nil {
			t.Fatal(err)
		}
		assertDeviceGone(t, h)
	})
	t.Run("Factory.DeleteDevice", func(t *testing.T) {
		h := newHarness(t, true)
		if err := h.f.DeleteDevice(context.Background(), h.e.linkedDevice()); err != nil {
			t.Fatal(err)
		}
		if dev, _ := h.f.container.GetDevice(context.Background(), ownDevice); dev != nil {
			t.Fatal("device still stored")
		}
	})
}

func assertDeviceGone(t *testing.T, h *harness) {
	t.Helper()
	dev, err := h.f.container.GetDevice(context.Background(), ownDevice)
	if err != nil || dev != nil {
		t.Fatalf("device after logout = %v, %v", dev, err)
	}
	if h.e.linkedDevice() != "" {
		t.Fatalf("engine still has device %q", h.e.linkedDevice())
	}
	if evs := h.rec.all(); len(evs) != 0 {
		t.Fatalf("own logout reported events: %s", fmtEvents(evs))
	}
}

func TestDisconnectAndClose(t *testing.T) {
	h := newHarness(t, true)
	fake := h.current()
	h.e.Disconnect()
	h.e.Disconnect() // idempotent
	if fake.IsConnected() {
		t.Fatal("still connected")
	}
	if evs := h.rec.all(); len(evs) != 0 {
		t.Fatalf("Disconnect reported events: %s", fmtEvents(evs))
	}
	// The link is kept: the device is still stored, Connect reuses it.
	if dev, _ := h.f.container.GetDevice(context.Background(), ownDevice); dev == nil {
		t.Fatal("device deleted by Disconnect")
	}
	if err := h.e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.e.Close(); err != nil {
		t.Fatal(err)
	}
	// Events of the closed engine's client go nowhere.
	fake.fire(&events.Connected{})
	if evs := h.rec.all(); len(evs) != 0 {
		t.Fatalf("closed engine reported: %s", fmtEvents(evs))
	}
}

// Late events of a connection already handled change nothing.
func TestStaleConnectionEvents(t *testing.T) {
	h := newHarness(t, true)
	fake := h.current()
	h.e.mu.Lock()
	h.e.connectedAt = fixedNow.Add(-time.Minute)
	h.e.mu.Unlock()
	// A keep-alive failure from before this connection came up.
	fake.fire(&events.KeepAliveTimeout{ErrorCount: 9, LastSuccess: fixedNow.Add(-10 * time.Minute)})
	if !fake.IsConnected() {
		t.Fatal("a stale keep-alive event dropped the connection")
	}
	h.e.Disconnect()
	fake.fire(&events.Disconnected{})
	fake.fire(&events.KeepAliveTimeout{ErrorCount: 9, LastSuccess: fixedNow.Add(-10 * time.Minute)})
	checkEvents(t, h.rec.all())
}

// WhatsApp can end a linking connection with a failure; the event is
// reported and the unlinked client dropped.
func TestLinkingEndedByWhatsApp(t *testing.T) {
	tests := []struct {
		name string
		evt  any
		want wabsync.EngineEvent
	}{
		{"Refused", &events.ConnectFailure{Reason: events.ConnectFailureBadUserAgent}, wabsync.EngineLinkTimeout{}},
		{"ClientOutdated", &events.ClientOutdated{}, wabsync.EngineClientOutdated{}},
		{"TemporaryBan", &events.TemporaryBan{Code: events.TempBanBlockedByUsers}, wabsync.EngineTemporaryBan{Reason: events.TempBanBlockedByUsers.String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			h.setup = func(c *fakeClient) {
				c.onConnect = func(c *fakeClient) {
					c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@a", Timeout: time.Minute}
				}
			}
			if err := h.e.Connect(context.Background()); err != nil {
				t.Fatal(err)
			}
			fake := h.current()
			fake.fire(tt.evt)
			fake.qr <- whatsmeow.QRChannelErrUnexpectedEvent
			checkEvents(t, h.rec.all(), wabsync.EngineQR{Code: "2@a", ExpiresAt: fixedNow.Add(time.Minute)}, tt.want)
			if fake.IsConnected() || h.e.current(fake) {
				t.Fatal("the linking client was kept")
			}
		})
	}
}

// After a pairing, whatsmeow logs in again by itself; if that login never
// completes, linking ends (EngineLinkTimeout) with the device linked, so
// that the next Connect logs in.
func TestFirstLoginAfterPairingTimesOut(t *testing.T) {
	h := newHarness(t, false, withTimeout(200*time.Millisecond))
	h.setup = func(c *fakeClient) {
		c.onConnect = func(c *fakeClient) {
			c.qr <- whatsmeow.QRChannelItem{Event: whatsmeow.QRChannelEventCode, Code: "2@a", Timeout: time.Minute}
		}
	}
	if err := h.e.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	fake := h.current()
	jid := ownDevice
	fake.dev.ID = &jid
	fake.fire(&events.PairSuccess{ID: ownDevice})
	fake.qr <- whatsmeow.QRChannelSuccess
	h.rec.waitFor(t, "link timeout", func(ev wabsync.EngineEvent) bool { _, ok := ev.(wabsync.EngineLinkTimeout); return ok })
	if fake.IsConnected() {
		t.Fatal("still connected")
	}
	// The link is kept: the next Connect logs in as a linked device.
	if h.e.linkedDevice() != ownDevice.String() {
		t.Fatalf("DeviceJID = %q", h.e.linkedDevice())
	}
}
