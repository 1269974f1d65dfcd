package e2e

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestPathReferenceMatchesVault: docs/reference/paths.md, rendered from the
// plugin's OpenAPI document in-process (TestPathReference in backend/), is
// what a real Vault serves at sys/internal/specs/openapi for the mount:
// every path, operation, operation ID and path parameter, and every field
// of the plugin's request and response schemas.
//
// Vault 1.21 keeps a plugin's schemas under components but loses the $ref
// from each operation on the way through the plugin channel ("schema": {}),
// so fields are matched by schema, not by operation; the in-process test
// checks that each field sits under its operation.
func TestPathReferenceMatchesVault(t *testing.T) {
	requireE2E(t)
	t.Parallel()
	ref, err := os.ReadFile(filepath.Join(RepoRoot(t), "docs", "reference", "paths.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	for _, s := range strings.Split(string(ref), "\n## ")[1:] {
		title, _, _ := strings.Cut(s, "\n")
		sections[strings.Trim(title, "`")] = s
	}

	v := StartVaultDev(t)
	status, spec := v.HTTP(t, "GET", "sys/internal/specs/openapi", nil)
	if status != 200 {
		t.Fatalf("sys/internal/specs/openapi: HTTP %d %v", status, spec)
	}
	const fix = "regenerate the reference with make docs (go test ./backend/ -run '^TestPathReference$' -update)"

	paths, _ := spec["paths"].(map[string]any)
	prefix := "/" + Mount + "/"
	var mine []string
	for p := range paths {
		if strings.HasPrefix(p, prefix) {
			mine = append(mine, p)
		}
	}
	sort.Strings(mine)
	if len(mine) == 0 {
		t.Fatalf("Vault's OpenAPI has no path under %s", prefix)
	}
	if len(mine) != len(sections) {
		t.Errorf("Vault serves %d paths under %s, the reference has %d sections: %s", len(mine), prefix, len(sections), fix)
	}
	for _, p := range mine {
		rel := strings.TrimPrefix(p, prefix)
		sec, ok := sections[rel]
		if !ok {
			t.Errorf("Vault serves %s; the reference has no section for it: %s", p, fix)
			continue
		}
		item, _ := paths[p].(map[string]any)
		for _, prm := range asList(item["parameters"]) {
			if name, _ := prm["name"].(string); !strings.Contains(sec, "| `"+name+"` |") {
				t.Errorf("%s: the reference lacks path parameter %s: %s", p, name, fix)
			}
		}
		for _, method := range []string{"get", "post", "patch", "delete"} {
			op, ok := item[method].(map[string]any)
			if !ok {
				continue
			}
			if !strings.Contains(sec, "`"+strings.ToUpper(method)+" /v1"+p+"`") {
				t.Errorf("%s: the reference lacks the %s operation: %s", p, strings.ToUpper(method), fix)
			}
			if id, _ := op["operationId"].(string); id != "" && !strings.Contains(sec, "operation ID `"+id+"`") {
				t.Errorf("%s %s: the reference lacks operation ID %s: %s", p, method, id, fix)
			}
		}
	}

	components, _ := spec["components"].(map[string]any)
	schemas, _ := components["schemas"].(map[string]any)
	n := 0
	for name, raw := range schemas {
		if !strings.HasPrefix(name, "Pure1") {
			continue
		}
		n++
		props, _ := raw.(map[string]any)["properties"].(map[string]any)
		for field := range props {
			if !strings.Contains(string(ref), "| `"+field+"` |") {
				t.Errorf("schema %s: the reference lacks field %s: %s", name, field, fix)
			}
		}
	}
	if n == 0 {
		t.Fatal("Vault's OpenAPI has none of the plugin's schemas (Pure1...)")
	}
	t.Logf("%d paths and %d schemas of the mount checked against docs/reference/paths.md", len(mine), n)
}

func asList(v any) []map[string]any {
	var out []map[string]any
	for _, x := range asSlice(v) {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
