package apidocs

import (
	"html"
	"html/template"
	"regexp"
	"strings"
)

// markdown renders the small CommonMark subset the document's descriptions
// use: paragraphs, "##"/"###" headings, "-" lists (with continuation lines),
// pipe tables, fenced code blocks, `code`, **bold** and [links](url). The
// text is escaped first; only http(s), mailto, "/" and "#" links become
// anchors.
func markdown(src string) template.HTML {
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	var b strings.Builder
	var para []string
	flush := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + inline(strings.Join(para, " ")) + "</p>\n")
			para = nil
		}
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			flush()
		case strings.HasPrefix(trimmed, "```"):
			flush()
			var code []string
			for i++; i < len(lines) && !strings.HasPrefix(strings.TrimSpace(lines[i]), "```"); i++ {
				code = append(code, lines[i])
			}
			b.WriteString("<pre><code>" + html.EscapeString(strings.Join(code, "\n")) + "</code></pre>\n")
		case strings.HasPrefix(trimmed, "### "):
			flush()
			b.WriteString("<h4>" + inline(trimmed[4:]) + "</h4>\n")
		case strings.HasPrefix(trimmed, "## "):
			flush()
			b.WriteString("<h3>" + inline(trimmed[3:]) + "</h3>\n")
		case strings.HasPrefix(trimmed, "- "):
			flush()
			b.WriteString("<ul>\n")
			for i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "- ") {
				item := strings.TrimSpace(lines[i])[2:]
				// Continuation lines are indented and not a new item.
				for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "  ") && !strings.HasPrefix(strings.TrimSpace(lines[i+1]), "- ") && strings.TrimSpace(lines[i+1]) != "" {
					i++
					item += " " + strings.TrimSpace(lines[i])
				}
				b.WriteString("<li>" + inline(item) + "</li>\n")
				i++
			}
			i--
			b.WriteString("</ul>\n")
		case strings.HasPrefix(trimmed, "|"):
			flush()
			var rows [][]string
			for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				rows = append(rows, tableCells(strings.TrimSpace(lines[i])))
			}
			i--
			writeTable(&b, rows)
		default:
			para = append(para, trimmed)
		}
	}
	flush()
	return template.HTML(b.String())
}

// tableCells splits "| a | `b|c` |" into cells, keeping pipes inside code.
func tableCells(row string) []string {
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	var cells []string
	var cur strings.Builder
	inCode := false
	for _, r := range row {
		switch {
		case r == '`':
			inCode = !inCode
			cur.WriteRune(r)
		case r == '|' && !inCode:
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

var separatorRow = regexp.MustCompile(`^:?-{3,}:?$`)

func writeTable(b *strings.Builder, rows [][]string) {
	if len(rows) == 0 {
		return
	}
	b.WriteString("<table>\n")
	body := rows
	if len(rows) > 1 && isSeparator(rows[1]) {
		b.WriteString("<thead><tr>")
		for _, c := range rows[0] {
			b.WriteString("<th>" + inline(c) + "</th>")
		}
		b.WriteString("</tr></thead>\n")
		body = rows[2:]
	}
	b.WriteString("<tbody>\n")
	for _, r := range body {
		b.WriteString("<tr>")
		for _, c := range r {
			b.WriteString("<td>" + inline(c) + "</td>")
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody></table>\n")
}

func isSeparator(cells []string) bool {
	for _, c := range cells {
		if !separatorRow.MatchString(c) {
			return false
		}
	}
	return true
}

var (
	linkRE = regexp.MustCompile(`\[([^\]]+)\]\(([^)\s]+)\)`)
	boldRE = regexp.MustCompile(`\*\*([^*]+)\*\*`)
)

// inline renders code spans, bold and links in one line of text.
func inline(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '`')
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i+1:], '`')
		if j < 0 {
			break
		}
		b.WriteString(spans(s[:i]))
		b.WriteString("<code>" + html.EscapeString(s[i+1:i+1+j]) + "</code>")
		s = s[i+2+j:]
	}
	b.WriteString(spans(s))
	return b.String()
}

// spans renders bold and links in text without code spans.
func spans(s string) string {
	s = html.EscapeString(s)
	s = boldRE.ReplaceAllString(s, "<strong>$1</strong>")
	return linkRE.ReplaceAllStringFunc(s, func(m string) string {
		parts := linkRE.FindStringSubmatch(m)
		text, href := parts[1], html.UnescapeString(parts[2])
		if !safeHref(href) {
			return text
		}
		return `<a href="` + html.EscapeString(href) + `">` + text + `</a>`
	})
}

func safeHref(h string) bool {
	return strings.HasPrefix(h, "https://") || strings.HasPrefix(h, "http://") ||
		strings.HasPrefix(h, "mailto:") || strings.HasPrefix(h, "#") ||
		(strings.HasPrefix(h, "/") && !strings.HasPrefix(h, "//"))
}
