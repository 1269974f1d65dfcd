package backend

import (
	"strings"
	"testing"
)

// The Pure1 kind refuses what belongs to arrays, names what it lacks in its
// own words, and reads show no array field.
func TestPure1Kind(t *testing.T) {
	env, _ := newArrayEnv(t, envOptions{})
	env.writeConfig("p", keyA(), "")
	read := env.mustRead("config/p").Data
	for _, f := range []string{fieldArrayURL, fieldClientID, fieldManaged, fieldPendingDeletions, fieldAllowedArrayRoles} {
		if _, ok := read[f]; ok {
			t.Errorf("a Pure1 config read shows %s", f)
		}
	}
	if read[fieldKind] != kindPure1 {
		t.Errorf("kind = %v", read[fieldKind])
	}
	for _, tc := range []struct {
		path string
		data map[string]interface{}
		want string
	}{
		{"config/p", map[string]interface{}{fieldArrayURL: testArrayURL}, "applies only to kind=flasharray or kind=flashblade"},
		{"config/p", map[string]interface{}{fieldAllowedArrayRoles: "readonly"}, "applies only to kind=flasharray"},
		{"config/p/rotate", map[string]interface{}{fieldRetirePrevious: "now"}, "Pure1 has no API to delete an application"},
		{"config/p/rotate", map[string]interface{}{fieldClientID: "x", fieldKeyID: "k"}, "applies to array configs"},
		{"roles/r", map[string]interface{}{fieldConfig: "p", fieldUsername: "ops"}, "username applies only to roles on a flasharray or flashblade config"},
		{"roles/r", map[string]interface{}{fieldConfig: "p"}, ""},
	} {
		resp, err := env.write(tc.path, tc.data)
		msg := errorText(resp, err)
		if tc.want == "" {
			if resp == nil || !warningsContain(resp, `has no app_id yet`) {
				t.Errorf("%s %v: want a warning naming app_id, got %v %q", tc.path, tc.data, resp, msg)
			}
			continue
		}
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s %v: %q, want %q", tc.path, tc.data, msg, tc.want)
		}
	}
	resp, err := env.read("creds/r")
	if msg := errorText(resp, err); !strings.Contains(msg, "has no app_id") || strings.Contains(msg, "API client") {
		t.Errorf("creds of a Pure1 config without app_id: %q", msg)
	}
}
