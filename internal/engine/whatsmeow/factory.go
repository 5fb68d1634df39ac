package whatsmeow

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/store/sqlstore"
	"go.mau.fi/whatsmeow/types"

	"github.com/wabsync/wabsync"
)

// Defaults of Options.
const (
	DefaultDeviceName     = "WabSync"
	DefaultConnectTimeout = 30 * time.Second
)

// maxDeviceNameLen bounds the name shown on the phone (in characters).
const maxDeviceNameLen = 50

// Options tune the engines of a Factory.
type Options struct {
	// DeviceName prefixes the name the phone shows for a linked session:
	// "WabSync (sales)" for a session named "sales". Default "WabSync".
	DeviceName string
	// ConnectTimeout bounds one connection attempt: dialing, the handshake,
	// and for a linked device the login (default 30s).
	ConnectTimeout time.Duration
	// TempDir is where media is staged while it is encrypted for upload and
	// decrypted after download (default: the system's temporary directory).
	// Files are removed as soon as they are no longer needed.
	TempDir string
	// AllowPrivateProxy lets a session's proxy be on a loopback, private,
	// link-local or metadata address (WABSYNC_ALLOW_PRIVATE_URLS): for
	// tests and local development only. By default such a proxy is refused
	// when it is dialled.
	AllowPrivateProxy bool

	// newClient replaces the whatsmeow client in tests.
	newClient func(dev *store.Device, cfg clientConfig) (waClient, error)
	// now replaces the clock in tests.
	now func() time.Time
}

// Factory makes whatsmeow engines. It owns whatsmeow's device store in
// WabSync's database. It implements wabsync.EngineFactory.
type Factory struct {
	container *sqlstore.Container
	logger    *slog.Logger
	opts      Options
}

var _ wabsync.EngineFactory = (*Factory)(nil)

// NewFactory opens whatsmeow's device store on db and brings its tables up to
// date. dialect is "sqlite3" for SQLite (modernc.org/sqlite; foreign keys must
// be on, e.g. with _pragma=foreign_keys(1)) or "postgres" for PostgreSQL
// (pgx's database/sql driver). The factory never closes db.
func NewFactory(ctx context.Context, db *sql.DB, dialect string, logger *slog.Logger, opts Options) (*Factory, error) {
	if db == nil {
		return nil, errors.New("whatsmeow: nil database")
	}
	switch dialect {
	case "sqlite3", "postgres":
	case "sqlite":
		dialect = "sqlite3"
	case "pgx", "postgresql":
		dialect = "postgres"
	default:
		return nil, fmt.Errorf("whatsmeow: unsupported database dialect %q (want sqlite3 or postgres)", dialect)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.DeviceName == "" {
		opts.DeviceName = DefaultDeviceName
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.newClient == nil {
		opts.newClient = newRealClient
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	container := sqlstore.NewWithDB(db, dialect, newWALogger(logger, "Store"))
	if err := container.Upgrade(ctx); err != nil {
		return nil, fmt.Errorf("whatsmeow: upgrade device store: %w", err)
	}
	return &Factory{container: container, logger: logger, opts: opts}, nil
}

// NewEngine makes the engine of one session. It does not touch the network or
// the database; Connect does.
func (f *Factory) NewEngine(o wabsync.EngineOptions) (wabsync.Engine, error) {
	return f.newEngine(o)
}

func (f *Factory) newEngine(o wabsync.EngineOptions) (*Engine, error) {
	if o.Handler == nil {
		return nil, errors.New("whatsmeow: EngineOptions.Handler is required")
	}
	if o.DeviceJID != "" {
		if _, err := parseDeviceJID(o.DeviceJID); err != nil {
			return nil, err
		}
	}
	if o.Config.Proxy != "" {
		if err := validateProxy(o.Config.Proxy); err != nil {
			return nil, &wabsync.Error{Code: wabsync.EValidation, Message: "The proxy is not a valid http, https or socks5 URL.",
				Details: map[string]string{"config.proxy": "must be an http, https or socks5 URL"}}
		}
	}
	return newEngine(f, o), nil
}

// DeleteDevice removes a device and all its keys from the store. It does not
// tell WhatsApp (Engine.Logout does, when connected). Deleting a device that
// is not stored is not an error.
func (f *Factory) DeleteDevice(ctx context.Context, deviceJID string) error {
	if deviceJID == "" {
		return nil
	}
	jid, err := parseDeviceJID(deviceJID)
	if err != nil {
		return err
	}
	dev, err := f.container.GetDevice(ctx, jid)
	if err != nil {
		return fmt.Errorf("whatsmeow: load device: %w", err)
	}
	if dev == nil {
		return nil
	}
	if err := dev.Delete(ctx); err != nil {
		return fmt.Errorf("whatsmeow: delete device: %w", err)
	}
	return nil
}

// loadDevice returns the stored device for deviceJID, a new (unlinked) device
// when deviceJID is empty, and (nil, nil) when deviceJID is not stored.
func (f *Factory) loadDevice(ctx context.Context, deviceJID string) (*store.Device, error) {
	if deviceJID == "" {
		return f.container.NewDevice(), nil
	}
	jid, err := parseDeviceJID(deviceJID)
	if err != nil {
		return nil, err
	}
	dev, err := f.container.GetDevice(ctx, jid)
	if err != nil {
		return nil, fmt.Errorf("whatsmeow: load device: %w", err)
	}
	return dev, nil
}

// deviceName is the name the phone shows for the session named sessionName.
func (f *Factory) deviceName(sessionName string) string {
	name := f.opts.DeviceName
	if s := strings.TrimSpace(sessionName); s != "" {
		name += " (" + s + ")"
	}
	if utf8.RuneCountInString(name) > maxDeviceNameLen {
		r := []rune(name)
		name = string(r[:maxDeviceNameLen-1]) + "…"
	}
	return name
}

func parseDeviceJID(s string) (types.JID, error) {
	jid, err := types.ParseJID(s)
	if err != nil || jid.User == "" || jid.Server != types.DefaultUserServer {
		return types.EmptyJID, fmt.Errorf("whatsmeow: invalid device JID %q", s)
	}
	return jid, nil
}
