package backend

import (
	"strings"
	"testing"

	"github.com/pure1vault/vault-plugin-secrets-pure1/backend/purearray"
)

// A managed FlashBlade config without api_client_name gets a name a
// FlashBlade takes (vault_<config>, '-' and '.' made '_'), registers on the
// FlashBlade wire, and refuses a name with '-'.
func TestFlashBladeManagedDefaults(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	resp := env.mustWrite("config/fb-lab.1", managedArrayConfig(map[string]interface{}{fieldKind: purearray.KindFlashBlade}))
	if got := resp.Data[fieldAPIClientName]; got != "vault_fb_lab_1" {
		t.Errorf("api_client_name = %v, want vault_fb_lab_1", got)
	}
	if len(fa.createdKinds) != 1 || fa.createdKinds[0] != purearray.FlashBlade {
		t.Errorf("the create went out on %v, want the FlashBlade wire", fa.createdKinds)
	}
	if got := resp.Data[fieldKind]; got != purearray.KindFlashBlade {
		t.Errorf("kind = %v", got)
	}
	resp, err := env.write("config/fb2", managedArrayConfig(map[string]interface{}{fieldKind: purearray.KindFlashBlade, fieldAPIClientName: "vault-fb2"}))
	if msg := errorText(resp, err); !strings.Contains(msg, "not a FlashBlade API client name") || !strings.Contains(msg, "'_' only") {
		t.Errorf("a FlashBlade name with '-': %q", msg)
	}
	assertArrayClean(t, env, fa, "fb-lab.1")
}

// check on a FlashBlade config speaks of the array, not of Pure1.
func TestFlashBladeCheckSpeaksArray(t *testing.T) {
	env, fa := newArrayEnv(t, envOptions{})
	env.mustWrite("config/fb", managedArrayConfig(map[string]interface{}{fieldKind: purearray.KindFlashBlade}))
	ok := env.mustRead("config/fb/check").Data
	if ok[fieldCheckOK] != true || ok[fieldArrayURL] != testArrayURL || ok[fieldKind] != purearray.KindFlashBlade {
		t.Fatalf("check = %v", ok)
	}
	if _, has := ok[fieldTokenURL]; has {
		t.Errorf("an array check shows token_url: %v", ok)
	}
	env.clock.Add(checkMaxAge)
	fa.setFail("exchange", errFakeStep)
	bad := env.mustRead("config/fb/check")
	advice := bad.Data[fieldCheckAdvice].(string)
	if !strings.Contains(advice, "FlashBlade refused the exchange") || strings.Contains(advice, "Pure1") || strings.Contains(advice, "app_id") {
		t.Errorf("advice on a FlashBlade config: %q", advice)
	}
}
