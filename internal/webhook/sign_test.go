package webhook_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/wabsync/wabsync/internal/webhook"
)

func headers(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	h.Set("webhook-signature", sig)
	return h
}

func TestSign(t *testing.T) {
	body := []byte(`{"id":"evt_1","type":"webhook.test","data":{}}`)
	now := time.Now()
	t.Run("StockLibraryVerifies", func(t *testing.T) {
		secret := webhook.NewSecret()
		sig := webhook.Sign(secret, "evt_1", now, body)
		if !strings.HasPrefix(sig, "v1,") {
			t.Fatalf("signature %q", sig)
		}
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, headers("evt_1", now, sig)); err != nil {
			t.Fatalf("verify: %v", err)
		}
		want, _ := wh.Sign("evt_1", now, body)
		if sig != want {
			t.Fatalf("signature %q, library's %q", sig, want)
		}
	})
	t.Run("TamperedBodyFails", func(t *testing.T) {
		secret := webhook.NewSecret()
		wh, _ := standardwebhooks.NewWebhook(secret)
		sig := webhook.Sign(secret, "evt_1", now, body)
		if err := wh.Verify(append(body, ' '), headers("evt_1", now, sig)); err == nil {
			t.Fatal("tampered body verified")
		}
	})
	t.Run("BothSecretsDuringRotation", func(t *testing.T) {
		old, cur := webhook.NewSecret(), webhook.NewSecret()
		sig := webhook.SignAll([]string{cur, old}, "evt_2", now, body)
		if n := len(strings.Split(sig, " ")); n != 2 {
			t.Fatalf("%d signatures", n)
		}
		for name, s := range map[string]string{"Old": old, "New": cur} {
			wh, _ := standardwebhooks.NewWebhook(s)
			if err := wh.Verify(body, headers("evt_2", now, sig)); err != nil {
				t.Fatalf("%s secret: %v", name, err)
			}
		}
		other, _ := standardwebhooks.NewWebhook(webhook.NewSecret())
		if err := other.Verify(body, headers("evt_2", now, sig)); err == nil {
			t.Fatal("an unrelated secret verified")
		}
	})
}

func TestValidateSecret(t *testing.T) {
	for name, tc := range map[string]struct {
		secret string
		ok     bool
	}{
		"Generated":     {webhook.NewSecret(), true},
		"NoPrefix":      {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", false},
		"TooShort":      {"whsec_c2hvcnQ=", false},
		"NotBase64":     {"whsec_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", false},
		"ThirtyTwoByte": {"whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=", true},
		"TooLong":       {"whsec_" + strings.Repeat("QUFB", 22), false},
	} {
		t.Run(name, func(t *testing.T) {
			if err := webhook.ValidateSecret(tc.secret); (err == nil) != tc.ok {
				t.Fatalf("ValidateSecret(%q) = %v", tc.secret, err)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	prevMax := time.Duration(0)
	for n := 1; n <= 9; n++ {
		nominal := webhook.DefaultSchedule[min(n, len(webhook.DefaultSchedule))-1]
		for i := 0; i < 50; i++ {
			d := webhook.Backoff(nil, n)
			lo := time.Duration(float64(nominal) * (1 - webhook.Jitter))
			hi := time.Duration(float64(nominal) * (1 + webhook.Jitter))
			if d < lo || d > hi {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", n, d, lo, hi)
			}
		}
		if n <= len(webhook.DefaultSchedule) && nominal <= prevMax {
			t.Fatalf("schedule does not grow at %d", n)
		}
		prevMax = nominal
	}
}
