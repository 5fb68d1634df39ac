package whatsmeow

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"go.mau.fi/whatsmeow/proto/waAdv"
	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
	"google.golang.org/protobuf/proto"
)

func countRows(t *testing.T, db *sql.DB, table, where string, args ...any) int {
	t.Helper()
	var n int
	q := "SELECT COUNT(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestStore(t *testing.T) {
	eachDB(t, func(t *testing.T, d testDB) {
		ctx := context.Background()
		f, err := NewFactory(ctx, d.db, d.dialect, testLogger(t), Options{})
		if err != nil {
			t.Fatalf("NewFactory: %v", err)
		}

		t.Run("UpgradeIsIdempotent", func(t *testing.T) {
			if _, err := NewFactory(ctx, d.db, d.dialect, testLogger(t), Options{}); err != nil {
				t.Fatalf("second NewFactory: %v", err)
			}
			if n := countRows(t, d.db, "whatsmeow_version", ""); n != 1 {
				t.Fatalf("whatsmeow_version has %d rows", n)
			}
		})

		t.Run("PutGetDelete", func(t *testing.T) {
			jid := types.NewADJID("14155550123", 0, 12)
			dev := mustLinkedDevice(t, f, jid, "Bob")

			// Data hanging off the device, removed with it (ON DELETE CASCADE).
			if err := dev.Identities.PutIdentity(ctx, "14155550999.0:1", [32]byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
			if err := dev.LIDs.PutLIDMapping(ctx, types.NewJID("777", types.HiddenUserServer), types.NewJID("14155550999", types.DefaultUserServer)); err != nil {
				t.Fatal(err)
			}

			got, err := f.container.GetDevice(ctx, jid)
			if err != nil || got == nil {
				t.Fatalf("GetDevice = %v, %v", got, err)
			}
			if got.PushName != "Bob" || *got.ID != jid || got.LID != ownLID {
				t.Fatalf("device = %v %q %v", got.ID, got.PushName, got.LID)
			}
			if *got.IdentityKey.Priv != *dev.IdentityKey.Priv || *got.NoiseKey.Priv != *dev.NoiseKey.Priv ||
				got.RegistrationID != dev.RegistrationID || string(got.AdvSecretKey) != string(dev.AdvSecretKey) {
				t.Fatal("keys did not round-trip")
			}
			if pn, err := got.LIDs.GetPNForLID(ctx, types.NewJID("777", types.HiddenUserServer)); err != nil || pn.User != "14155550999" {
				t.Fatalf("GetPNForLID = %v, %v", pn, err)
			}

			// Through an engine: a stored device is loaded by its JID.
			loaded, err := f.loadDevice(ctx, jid.String())
			if err != nil || loaded == nil || loaded.GetJID() != jid {
				t.Fatalf("loadDevice = %v, %v", loaded, err)
			}
			if unlinked, err := f.loadDevice(ctx, ""); err != nil || unlinked == nil || unlinked.ID != nil {
				t.Fatalf("loadDevice(\"\") = %v, %v", unlinked, err)
			}

			if n := countRows(t, d.db, "whatsmeow_identity_keys", "our_jid = $1", jid.String()); n != 1 {
				t.Fatalf("identity keys before delete = %d", n)
			}
			if err := f.DeleteDevice(ctx, jid.String()); err != nil {
				t.Fatalf("DeleteDevice: %v", err)
			}
			if got, err := f.container.GetDevice(ctx, jid); err != nil || got != nil {
				t.Fatalf("after delete GetDevice = %v, %v", got, err)
			}
			if n := countRows(t, d.db, "whatsmeow_identity_keys", "our_jid = $1", jid.String()); n != 0 {
				t.Fatalf("identity keys after delete = %d (foreign keys off?)", n)
			}
			if missing, err := f.loadDevice(ctx, jid.String()); err != nil || missing != nil {
				t.Fatalf("loadDevice of a deleted device = %v, %v", missing, err)
			}
			// Deleting again, or a device never stored, is fine.
			if err := f.DeleteDevice(ctx, jid.String()); err != nil {
				t.Fatalf("second DeleteDevice: %v", err)
			}
		})

		t.Run("BadDeviceJID", func(t *testing.T) {
			if err := f.DeleteDevice(ctx, "not a jid@g.us"); err == nil {
				t.Fatal("DeleteDevice accepted a group JID")
			}
		})

		t.Run("ConcurrentDevices", func(t *testing.T) {
			// Several sessions saving at once, as on a busy server.
			errs := make(chan error, 8)
			for i := range 8 {
				go func() {
					dev := f.container.NewDevice()
					jid := types.NewADJID(fmt.Sprintf("141555507%02d", i), 0, 3)
					dev.ID = &jid
					dev.Account = &waAdv.ADVSignedDeviceIdentity{Details: []byte("d"), AccountSignatureKey: make([]byte, 32), AccountSignature: make([]byte, 64), DeviceSignature: make([]byte, 64)}
					errs <- dev.Save(ctx)
				}()
			}
			for range 8 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if n := countRows(t, d.db, "whatsmeow_device", "jid LIKE '141555507%'"); n != 8 {
				t.Fatalf("%d devices stored, want 8", n)
			}
		})
	})
}

func TestNewFactoryRefusesForeignKeysOff(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+t.TempDir()+"/nofk.db?_pragma=foreign_keys(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = NewFactory(context.Background(), db, "sqlite3", nil, Options{})
	if err == nil || !strings.Contains(err.Error(), "foreign keys") {
		t.Fatalf("err = %v, want foreign keys error", err)
	}
}

func TestNewFactoryDialects(t *testing.T) {
	db := MustOpenSQLite(t)
	for _, d := range []string{"sqlite3", "sqlite"} {
		if _, err := NewFactory(context.Background(), db, d, nil, Options{}); err != nil {
			t.Errorf("dialect %q: %v", d, err)
		}
	}
	if _, err := NewFactory(context.Background(), db, "mysql", nil, Options{}); err == nil {
		t.Error("dialect mysql accepted")
	}
	if _, err := NewFactory(context.Background(), nil, "sqlite3", nil, Options{}); err == nil {
		t.Error("nil db accepted")
	}
}

func TestDeviceName(t *testing.T) {
	f := &Factory{opts: Options{DeviceName: "WabSync"}}
	tests := []struct{ session, want string }{
		{"sales", "WabSync (sales)"},
		{"  ", "WabSync"},
		{strings.Repeat("x", 80), "WabSync (" + strings.Repeat("x", 40) + "…"},
	}
	for _, tt := range tests {
		if got := f.deviceName(tt.session); got != tt.want {
			t.Errorf("deviceName(%q) = %q, want %q", tt.session, got, tt.want)
		}
	}
}

// The name the phone shows is in the registration payload of a new device,
// for that client only; a linked device logs in with the usual payload.
func TestClientPayloadNamesTheDevice(t *testing.T) {
	f := MustFactory(t, Options{})
	dev := f.container.NewDevice()
	p := clientPayload(dev, "WabSync (sales)")
	var props waCompanionReg.DeviceProps
	if err := proto.Unmarshal(p.GetDevicePairingData().GetDeviceProps(), &props); err != nil {
		t.Fatal(err)
	}
	if props.GetOs() != "WabSync (sales)" {
		t.Fatalf("Os = %q", props.GetOs())
	}
	if store.DeviceProps.GetOs() == "WabSync (sales)" {
		t.Fatal("the process-wide DeviceProps changed")
	}
	if props.GetHistorySyncConfig() == nil || props.GetVersion() == nil {
		t.Fatal("the rest of DeviceProps was lost")
	}
	linked := mustLinkedDevice(t, f, ownDevice, "Alice")
	if lp := clientPayload(linked, "WabSync (sales)"); lp.GetDevicePairingData() != nil || lp.GetUsername() != 14155550100 {
		t.Fatalf("login payload = %v", lp)
	}
}

// The real client is set up the way the engine relies on.
func TestNewRealClientConfiguration(t *testing.T) {
	f := MustFactory(t, Options{})
	dev := f.container.NewDevice()
	c, err := newRealClient(dev, clientConfig{DeviceName: "WabSync (x)", Proxy: "socks5://127.0.0.1:1080"})
	if err != nil {
		t.Fatal(err)
	}
	cli := c.(realClient).Client
	if cli.EnableAutoReconnect || cli.InitialAutoReconnect {
		t.Error("whatsmeow's auto-reconnect is on")
	}
	if !cli.SynchronousAck || !cli.EnableDecryptedEventBuffer {
		t.Error("acks are not held until WabSync stored the event")
	}
	if !cli.AutomaticMessageRerequestFromPhone || !cli.UseRetryMessageStore {
		t.Error("retry handling is off")
	}
	var props waCompanionReg.DeviceProps
	if err := proto.Unmarshal(cli.GetClientPayload().GetDevicePairingData().GetDeviceProps(), &props); err != nil || props.GetOs() != "WabSync (x)" {
		t.Errorf("device name = %q, %v", props.GetOs(), err)
	}
	if c.Device() != dev {
		t.Error("Device() is not the store")
	}
	if _, err := newRealClient(dev, clientConfig{Proxy: "gopher://x"}); err == nil {
		t.Error("bad proxy accepted")
	}
}
