package whatsmeow

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/proto/waE2E"
	"go.mau.fi/whatsmeow/proto/waWa6"
	"go.mau.fi/whatsmeow/store"
	"go.mau.fi/whatsmeow/types"
	waLog "go.mau.fi/whatsmeow/util/log"
	"golang.org/x/net/proxy"
	"google.golang.org/protobuf/proto"

	"github.com/wabsync/wabsync/internal/safehttp"
)

// waClient is the subset of *whatsmeow.Client the engine uses. Everything the
// engine does to WhatsApp goes through it, so that tests put a fake below the
// network edge and keep the rest (event mapping, protobuf building, the store)
// real. The method signatures are whatsmeow's own.
type waClient interface {
	AddEventHandlerWithSuccessStatus(handler whatsmeow.EventHandlerWithSuccessStatus) uint32
	RemoveEventHandler(id uint32) bool

	GetQRChannel(ctx context.Context) (<-chan whatsmeow.QRChannelItem, error)
	ConnectContext(ctx context.Context) error
	Disconnect()
	IsConnected() bool
	IsLoggedIn() bool
	Logout(ctx context.Context) error
	PairPhone(ctx context.Context, phone string, showPushNotification bool, clientType whatsmeow.PairClientType, clientDisplayName string) (string, error)

	SendMessage(ctx context.Context, to types.JID, message *waE2E.Message, extra ...whatsmeow.SendRequestExtra) (whatsmeow.SendResponse, error)
	UploadReader(ctx context.Context, plaintext io.Reader, tempFile io.ReadWriteSeeker, appInfo whatsmeow.MediaType) (whatsmeow.UploadResponse, error)
	MarkRead(ctx context.Context, ids []types.MessageID, timestamp time.Time, chat, sender types.JID, receiptTypeExtra ...types.ReceiptType) error
	SendChatPresence(ctx context.Context, jid types.JID, state types.ChatPresence, media types.ChatPresenceMedia) error
	IsOnWhatsApp(ctx context.Context, phones []string) ([]types.IsOnWhatsAppResponse, error)
	DownloadMediaWithPathToFile(ctx context.Context, directPath string, encFileHash, fileHash, mediaKey []byte, mediaType whatsmeow.MediaType, mmsType string, allowNoHash bool, file whatsmeow.File) error

	// Device is the client's device store (the Store field of
	// *whatsmeow.Client): own JID, push name, LID map, Delete.
	Device() *store.Device
}

// realClient is a *whatsmeow.Client as a waClient.
type realClient struct {
	*whatsmeow.Client
}

// Device returns the client's device store.
func (c realClient) Device() *store.Device { return c.Store }

var _ waClient = realClient{}

// clientConfig is how the engine sets up a new *whatsmeow.Client.
type clientConfig struct {
	// DeviceName is what the phone shows in its list of linked devices.
	DeviceName string
	Proxy      string
	// AllowPrivateProxy lets the proxy be on a loopback, private or
	// link-local address (WABSYNC_ALLOW_PRIVATE_URLS).
	AllowPrivateProxy bool
	Logger            waLog.Logger
}

// newRealClient makes a whatsmeow client for dev, configured for WabSync:
//   - no auto-reconnect: WabSync's session runtime owns retries and backoff;
//   - synchronous acks and the decrypted-event buffer: a message or receipt is
//     acknowledged to WhatsApp only after the engine's handler stored it, and
//     a message whose handler failed is redelivered by the server and
//     decrypted again from the buffer;
//   - undecryptable messages are re-requested from the phone;
//   - the linked-device name on the phone is cfg.DeviceName.
func newRealClient(dev *store.Device, cfg clientConfig) (waClient, error) {
	cli := whatsmeow.NewClient(dev, cfg.Logger)
	cli.EnableAutoReconnect = false
	cli.InitialAutoReconnect = false
	cli.SynchronousAck = true
	cli.EnableDecryptedEventBuffer = true
	cli.UseRetryMessageStore = true
	cli.AutomaticMessageRerequestFromPhone = true
	name := cfg.DeviceName
	cli.GetClientPayload = func() *waWa6.ClientPayload {
		return clientPayload(cli.Store, name)
	}
	if cfg.Proxy != "" {
		if err := setProxy(cli, cfg.Proxy, cfg.AllowPrivateProxy); err != nil {
			return nil, err
		}
	}
	return realClient{cli}, nil
}

// setProxy routes the client's websocket and media connections through the
// proxy at raw. The proxy is dialled by safehttp's dialer, which refuses
// loopback, private, link-local and metadata addresses (unless
// allowPrivate) at dial time, on the addresses the name resolves to then:
// a session's proxy must not reach the server's own network, even when its
// name resolved to a public address when it was set.
func setProxy(cli *whatsmeow.Client, raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	dial := safehttp.NewDialer(allowPrivate, 30*time.Second)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	switch u.Scheme {
	case "http", "https":
		tr.Proxy = http.ProxyURL(u)
		tr.DialContext = dial.DialContext // only ever dials the proxy
	case "socks5":
		px, err := proxy.FromURL(u, dial)
		if err != nil {
			return err
		}
		tr.Proxy = nil
		tr.DialContext = px.(proxy.ContextDialer).DialContext
	default:
		return fmt.Errorf("unsupported proxy scheme %q", u.Scheme)
	}
	hc := &http.Client{Transport: tr}
	cli.SetPreLoginHTTPClient(hc)
	cli.SetWebsocketHTTPClient(hc)
	cli.SetMediaHTTPClient(hc)
	return nil
}

// clientPayload is the payload whatsmeow would send at login, except that the
// registration payload of a device that is not linked yet names the device
// deviceName. whatsmeow only offers a process-wide setting for that name
// (store.DeviceProps, store.SetOSInfo), which cannot differ per session and
// would race between sessions linking at the same time; this sets it on a
// copy for this client only.
func clientPayload(dev *store.Device, deviceName string) *waWa6.ClientPayload {
	payload := dev.GetClientPayload()
	if dev.ID != nil || payload.GetDevicePairingData() == nil || deviceName == "" {
		return payload
	}
	props := proto.Clone(store.DeviceProps).(*waCompanionReg.DeviceProps)
	props.Os = proto.String(deviceName)
	if b, err := proto.Marshal(props); err == nil {
		payload.DevicePairingData.DeviceProps = b
	}
	return payload
}
