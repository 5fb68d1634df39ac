package apidocs

import (
	"html/template"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// md renders the document's descriptions: CommonMark plus GitHub's pipe
// tables. Raw HTML in a description is omitted (goldmark's default without
// html.WithUnsafe), and pageRules fits the result to the page.
var md = goldmark.New(
	goldmark.WithExtensions(extension.Table),
	goldmark.WithParserOptions(parser.WithASTTransformers(util.Prioritized(pageRules{}, 100))),
)

// markdown renders a description as HTML for the page.
func markdown(src string) template.HTML {
	var b strings.Builder
	if err := md.Convert([]byte(src), &b); err != nil {
		// goldmark fails only when writing fails, which a Builder does not.
		return template.HTML("<p>" + template.HTMLEscapeString(src) + "</p>")
	}
	return template.HTML(b.String())
}

// pageRules fits rendered descriptions to the page: headings move one level
// down (the page's own sections are <h2>, so "##" becomes <h3>); images
// become their alt text and links other than http(s), mailto, "/" and "#"
// become their text, so that the page loads nothing and runs nothing.
type pageRules struct{}

func (pageRules) Transform(doc *ast.Document, reader text.Reader, _ parser.Context) {
	source := reader.Source()
	var unwrap []ast.Node
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Heading:
			n.Level = min(n.Level+1, 6)
		case *ast.Image:
			unwrap = append(unwrap, n)
		case *ast.Link:
			if !safeHref(string(n.Destination)) {
				unwrap = append(unwrap, n)
			}
		case *ast.AutoLink:
			if !safeHref(string(n.URL(source))) {
				unwrap = append(unwrap, n)
			}
		}
		return ast.WalkContinue, nil
	})
	// Changed after the walk, which must not see its nodes move.
	for _, n := range unwrap {
		parent := n.Parent()
		if a, ok := n.(*ast.AutoLink); ok {
			parent.ReplaceChild(parent, a, ast.NewString(a.Label(source)))
			continue
		}
		for c := n.FirstChild(); c != nil; c = n.FirstChild() {
			parent.InsertBefore(parent, n, c)
		}
		parent.RemoveChild(parent, n)
	}
}

func safeHref(h string) bool {
	return strings.HasPrefix(h, "https://") || strings.HasPrefix(h, "http://") ||
		strings.HasPrefix(h, "mailto:") || strings.HasPrefix(h, "#") ||
		(strings.HasPrefix(h, "/") && !strings.HasPrefix(h, "//"))
}
