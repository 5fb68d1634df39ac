package httpapi

import "strings"

// parseRecipient accepts a phone number in E.164 (spaces, dashes, dots and
// brackets tolerated) or a WhatsApp JID, and returns the phone (when it is
// one) and the JID.
func parseRecipient(to string) (phone, jid string, ok bool) {
	to = strings.TrimSpace(to)
	if to == "" || len(to) > 100 {
		return "", "", false
	}
	if user, server, found := strings.Cut(to, "@"); found {
		switch server {
		case "s.whatsapp.net":
			if !allDigits(user) || len(user) < 7 || len(user) > 15 {
				return "", "", false
			}
			return "+" + user, to, true
		case "g.us":
			left, right, dash := strings.Cut(user, "-")
			if user == "" || !allDigits(left) || (dash && !allDigits(right)) {
				return "", "", false
			}
			return "", to, true
		case "lid":
			if !allDigits(user) {
				return "", "", false
			}
			return "", to, true
		}
		return "", "", false
	}
	p, ok := normalizePhone(to)
	if !ok {
		return "", "", false
	}
	return p, strings.TrimPrefix(p, "+") + "@s.whatsapp.net", true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const recipientHelp = "must be a phone number in E.164 form or a WhatsApp JID"
