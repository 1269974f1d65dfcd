package backend

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The path reference in docs/ is rendered from the OpenAPI document the
// backend itself answers a root help request with: the document Vault serves
// at sys/internal/specs/openapi and `vault path-help` reads. Rendering it
// from there, and failing when the checked-in file differs, keeps the manual
// from drifting from the schema; `make docs` rewrites it.

var updatePathReference = flag.Bool("update", false,
	"rewrite docs/reference/paths.md from the plugin's OpenAPI document (what `make docs` runs)")

const (
	pathReferenceFile = "../docs/reference/paths.md"
	pathReferenceFix  = "make docs   (go test ./backend/ -run '^TestPathReference$' -update)"
	// referenceMount is the mount the examples assume, as every page of the
	// manual does; the schema itself is relative to the mount.
	referenceMount = "pure1"
)

// TestPathReference fails when docs/reference/paths.md is not what the
// plugin's OpenAPI document renders to; with -update it writes the file.
func TestPathReference(t *testing.T) {
	doc := pluginOpenAPI(t)
	got := renderPathReference(doc)
	if again := renderPathReference(pluginOpenAPI(t)); again != got {
		t.Fatal("rendering the OpenAPI document twice gave different files: the reference would change with every make docs")
	}
	if *updatePathReference {
		if err := os.MkdirAll(filepath.Dir(pathReferenceFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(pathReferenceFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d paths)", pathReferenceFile, len(doc.Paths))
		return
	}
	want, err := os.ReadFile(pathReferenceFile)
	if err != nil {
		t.Fatalf("%v: generate it with: %s", err, pathReferenceFix)
	}
	if string(want) != got {
		line, file, schema := firstDifference(string(want), got)
		t.Fatalf("docs/reference/paths.md differs from the plugin's OpenAPI document, first at line %d:\n"+
			"  checked in: %q\n  schema:     %q\n"+
			"A path, field or description changed: regenerate the reference with\n  %s\nand commit it.",
			line, file, schema, pathReferenceFix)
	}
}

// TestPathReferenceCoversSchema: whatever the schema holds ends up in the
// reference: every path, every operation, every parameter and every request
// and response field, each in its own path's section. It guards the renderer
// against a schema shape it would silently drop.
func TestPathReferenceCoversSchema(t *testing.T) {
	doc := pluginOpenAPI(t)
	out := renderPathReference(doc)
	if len(doc.Paths) < 10 {
		t.Fatalf("the OpenAPI document has %d paths; expected every path of the engine", len(doc.Paths))
	}
	sections := map[string]string{}
	for _, s := range strings.Split(out, "\n## ")[1:] {
		title, _, _ := strings.Cut(s, "\n")
		sections[title] = s
	}
	for _, p := range sortedPaths(doc) {
		item := doc.Paths[p]
		sec, ok := sections["`"+strings.TrimPrefix(p, "/")+"`"]
		if !ok {
			t.Errorf("no section for %s", p)
			continue
		}
		for _, prm := range item.Parameters {
			if !strings.Contains(sec, "| `"+prm.Name+"` |") {
				t.Errorf("%s: path parameter %s missing", p, prm.Name)
			}
		}
		for _, o := range pathOperations(item) {
			if !strings.Contains(sec, "`"+o.method+" /v1/"+referenceMount+p+"`") {
				t.Errorf("%s: operation %s missing", p, o.method)
			}
			if o.op.Summary != "" && !strings.Contains(sec, mdText(o.op.Summary)) {
				t.Errorf("%s %s: summary missing", p, o.method)
			}
			for _, prm := range o.op.Parameters {
				if prm.Name != "list" && !strings.Contains(sec, "| `"+prm.Name+"` |") {
					t.Errorf("%s %s: query parameter %s missing", p, o.method, prm.Name)
				}
			}
			var schemas []*framework.OASSchema
			if o.op.RequestBody != nil {
				schemas = append(schemas, resolveSchema(doc, o.op.RequestBody.Content))
			}
			for _, r := range o.op.Responses {
				schemas = append(schemas, resolveSchema(doc, r.Content))
			}
			for _, s := range schemas {
				if s == nil {
					continue
				}
				for name, prop := range s.Properties {
					if !strings.Contains(sec, "| `"+name+"` | "+schemaType(prop)) {
						t.Errorf("%s %s: field %s missing", p, o.method, name)
					}
				}
			}
		}
	}
}

// TestPathReferenceDetectsChange: a field added to the schema changes the
// rendering, so the comparison above can fail.
func TestPathReferenceDetectsChange(t *testing.T) {
	doc := pluginOpenAPI(t)
	before := renderPathReference(doc)
	s := doc.Components.Schemas["Pure1WriteRoleRequest"]
	if s == nil {
		t.Fatalf("no Pure1WriteRoleRequest schema; have %v", sortedKeys(doc.Components.Schemas))
	}
	s.Properties["a_new_field"] = &framework.OASSchema{Type: "string", Description: "New."}
	after := renderPathReference(doc)
	if after == before || !strings.Contains(after, "| `a_new_field` | string |") {
		t.Fatal("a new field did not show in the rendered reference")
	}
}

// pluginOpenAPI asks a fresh backend, built by the Factory Vault calls, for
// its root help, and returns the OpenAPI document in it.
func pluginOpenAPI(t *testing.T) *framework.OASDocument {
	t.Helper()
	ctx := context.Background()
	conf := logical.TestBackendConfig()
	conf.System = logical.StaticSystemView{PluginEnvironment: &logical.PluginEnvironment{VaultVersion: "reference"}}
	conf.StorageView = &logical.InmemStorage{}
	b, err := Factory(ctx, conf)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Cleanup(ctx)
	resp, err := b.HandleRequest(ctx, &logical.Request{Operation: logical.HelpOperation, Storage: conf.StorageView})
	if err != nil || resp == nil {
		t.Fatalf("root help: %v %v", resp, err)
	}
	switch d := resp.Data["openapi"].(type) {
	case *framework.OASDocument:
		return d
	case map[string]any: // as it arrives over the plugin channel
		doc, err := framework.NewOASDocumentFromMap(d)
		if err != nil {
			t.Fatal(err)
		}
		return doc
	default:
		t.Fatalf("root help has no OpenAPI document: %T", resp.Data["openapi"])
		return nil
	}
}

type pathOperation struct {
	verb   string // the CLI's: list, read, write, delete
	method string
	op     *framework.OASOperation
}

// pathOperations lists a path's operations in a fixed order. Vault's LIST is
// a GET with list=true, so a list path's GET is shown as list.
func pathOperations(item *framework.OASPathItem) []pathOperation {
	var out []pathOperation
	if item.Get != nil {
		verb := "read"
		for _, p := range item.Get.Parameters {
			if p.Name == "list" && p.In == "query" {
				verb = "list"
			}
		}
		out = append(out, pathOperation{verb, "GET", item.Get})
	}
	if item.Post != nil {
		out = append(out, pathOperation{"write", "POST", item.Post})
	}
	if item.Patch != nil {
		out = append(out, pathOperation{"patch", "PATCH", item.Patch})
	}
	if item.Delete != nil {
		out = append(out, pathOperation{"delete", "DELETE", item.Delete})
	}
	return out
}

func renderPathReference(doc *framework.OASDocument) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	slugs := newSlugger()

	w("# Path reference\n\n")
	slugs.slug("Path reference")
	w("<!-- Generated by `make docs` from the plugin's OpenAPI document (backend/path_reference_test.go).\n")
	w("     Do not edit by hand: TestPathReference fails when this file and the schema differ. -->\n\n")
	w("Every path of the engine as the plugin's own OpenAPI document describes it: the schema\n")
	w("that `vault path-help %s/<path>` and Vault's `sys/internal/specs/openapi` show. Paths are\n", referenceMount)
	w("relative to the mount; the HTTP paths and commands below assume it is mounted at `%s/`.\n", referenceMount)
	w("Fields of type duration take a duration such as `90m` or `1h`, or a number of seconds.\n")
	w("The manual explains what the paths are for: [docs/README.md](../README.md).\n\n")

	paths := sortedPaths(doc)
	sections := make([]string, len(paths))
	for i, p := range paths {
		sections[i] = "`" + strings.TrimPrefix(p, "/") + "`"
	}
	// Headings are numbered by the slugger in document order, so the index
	// links are computed before the sections are written, in the same order.
	anchors := make([]string, len(paths))
	for i, p := range paths {
		anchors[i] = slugs.slug(sections[i])
		for _, o := range pathOperations(doc.Paths[p]) {
			slugs.slug(operationHeading(o, p))
		}
	}

	w("| path | operations | what |\n|---|---|---|\n")
	for i, p := range paths {
		item := doc.Paths[p]
		var verbs []string
		for _, o := range pathOperations(item) {
			verbs = append(verbs, o.verb)
		}
		w("| [%s](#%s) | %s | %s |\n", sections[i], anchors[i], strings.Join(verbs, ", "), mdCell(item.Description))
	}
	w("\n")

	for i, p := range paths {
		item := doc.Paths[p]
		w("## %s\n\n", sections[i])
		if item.Description != "" {
			w("%s\n\n", mdText(item.Description))
		}
		if len(item.Parameters) > 0 {
			w("| path parameter | type | description |\n|---|---|---|\n")
			for _, prm := range item.Parameters {
				w("| `%s` | %s | %s |\n", prm.Name, parameterType(prm), mdCell(prm.Description))
			}
			w("\n")
		}
		for _, o := range pathOperations(item) {
			w("### %s\n\n", operationHeading(o, p))
			w("`vault %s %s`", o.verb, cliPath(p))
			if o.op.OperationID != "" {
				w(" · operation ID `%s`", o.op.OperationID)
			}
			w("\n\n")
			if o.op.Summary != "" {
				w("%s\n\n", mdText(o.op.Summary))
			}
			if o.op.Description != "" {
				w("%s\n\n", mdText(o.op.Description))
			}
			var query []framework.OASParameter
			for _, prm := range o.op.Parameters {
				if prm.Name != "list" { // list=true is what makes a GET a LIST; the verb says so
					query = append(query, prm)
				}
			}
			if len(query) > 0 {
				w("| query parameter | type | default | description |\n|---|---|---|---|\n")
				for _, prm := range query {
					w("| `%s` | %s | %s | %s |\n", prm.Name, parameterType(prm), defaultValue(prm.Schema), mdCell(prm.Description))
				}
				w("\n")
			}
			if o.op.RequestBody != nil {
				if s := resolveSchema(doc, o.op.RequestBody.Content); s != nil && len(s.Properties) > 0 {
					required := map[string]bool{}
					for _, r := range s.Required {
						required[r] = true
					}
					w("Request fields:\n\n| field | type | default | description |\n|---|---|---|---|\n")
					for _, name := range sortedKeys(s.Properties) {
						prop := s.Properties[name]
						typ := schemaType(prop)
						if required[name] {
							typ += ", required"
						}
						w("| `%s` | %s | %s | %s |\n", name, typ, defaultValue(prop), mdCell(prop.Description))
					}
					w("\n")
				}
			}
			for _, code := range sortedKeys(o.op.Responses) {
				r := o.op.Responses[code]
				s := resolveSchema(doc, r.Content)
				if s == nil || len(s.Properties) == 0 {
					w("Response %d: %s\n\n", code, mdText(r.Description))
					continue
				}
				w("Response %d: %s\n\n| field | type | description |\n|---|---|---|\n", code, mdText(r.Description))
				for _, name := range sortedKeys(s.Properties) {
					prop := s.Properties[name]
					w("| `%s` | %s | %s |\n", name, schemaType(prop), mdCell(prop.Description))
				}
				w("\n")
			}
		}
	}
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func operationHeading(o pathOperation, p string) string {
	return fmt.Sprintf("%s: `%s /v1/%s%s`", o.verb, o.method, referenceMount, p)
}

// cliPath is the path as typed at the CLI: pure1/config/<name>.
func cliPath(p string) string {
	s := referenceMount + p
	s = strings.NewReplacer("{", "<", "}", ">").Replace(s)
	return strings.TrimSuffix(s, "/")
}

// resolveSchema returns the JSON body's schema, following a $ref into the
// document's components.
func resolveSchema(doc *framework.OASDocument, content framework.OASContent) *framework.OASSchema {
	mt := content["application/json"]
	if mt == nil || mt.Schema == nil {
		return nil
	}
	s := mt.Schema
	if ref, ok := strings.CutPrefix(s.Ref, "#/components/schemas/"); ok {
		return doc.Components.Schemas[ref]
	}
	return s
}

func schemaType(s *framework.OASSchema) string {
	if s == nil {
		return ""
	}
	t := s.Type
	switch {
	case t == "array" && s.Items != nil:
		t = "array of " + schemaType(s.Items)
	case t == "object" && s.Format == "map":
		t = "map"
	case s.Format != "" && s.Format != "map":
		t = s.Format
	}
	if len(s.Enum) > 0 {
		vals := make([]string, len(s.Enum))
		for i, v := range s.Enum {
			vals[i] = "`" + fmt.Sprint(v) + "`"
		}
		t += ": " + strings.Join(vals, ", ")
	}
	if s.DisplayAttrs != nil && s.DisplayAttrs.Sensitive {
		t += ", sensitive"
	}
	if s.Deprecated {
		t += ", deprecated"
	}
	return t
}

func parameterType(p framework.OASParameter) string {
	t := schemaType(p.Schema)
	if p.Required {
		t += ", required"
	}
	return t
}

func defaultValue(s *framework.OASSchema) string {
	if s == nil || s.Default == nil {
		return ""
	}
	b, err := json.Marshal(s.Default)
	if err != nil {
		return "`" + fmt.Sprint(s.Default) + "`"
	}
	return "`" + strings.Trim(string(b), `"`) + "`"
}

// mdText makes a description safe as Markdown prose: outside `code spans`,
// < > & would start HTML (creds/<name> would lose its <name>) and * would
// start emphasis.
func mdText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	parts := strings.Split(s, "`")
	esc := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "*", `\*`)
	for i := 0; i < len(parts); i += 2 { // even parts are outside code spans
		parts[i] = esc.Replace(parts[i])
	}
	return strings.Join(parts, "`")
}

// mdCell is mdText for a table cell, where | ends the cell even in code.
func mdCell(s string) string {
	return strings.ReplaceAll(mdText(s), "|", `\|`)
}

// slugger makes GitHub's heading anchors: lower case, punctuation dropped,
// spaces as hyphens, and -1, -2 ... for repeats.
type slugger map[string]int

func newSlugger() slugger { return slugger{} }

func (sl slugger) slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	s := b.String()
	n := sl[s]
	sl[s] = n + 1
	if n > 0 {
		return fmt.Sprintf("%s-%d", s, n)
	}
	return s
}

func sortedPaths(doc *framework.OASDocument) []string { return sortedKeys(doc.Paths) }

func sortedKeys[K int | string, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// firstDifference returns the first line (1-based) where a and b differ,
// and that line of each.
func firstDifference(a, b string) (int, string, string) {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) || i < len(bl); i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return i + 1, x, y
		}
	}
	return 0, "", ""
}
