package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestCleanEndsExchangesInFlight: when Vault unmounts a mount of the engine
// while a creds read waits on a Pure1 that does not answer, the exchange ends
// with the mount: the emulator sees the connection go at once, instead of the
// attempt running its 15 s and retrying for up to 90 s in a plugin process
// that serves other mounts. The other mount keeps working throughout.
//
// A plugin reload is not tested here: Vault 1.21 holds the reload until the
// mount's requests in flight have returned (about 46 s here: the exchanger's
// retries), so an exchange cannot outlive it by this route; the unit test
// TestCleanStopsExchangesAndConnections covers Clean on a reload.
func TestCleanEndsExchangesInFlight(t *testing.T) {
	requireE2E(t)
	e := StartEmulator(t)
	v := StartVaultDev(t)
	Bootstrap(t, v, e)

	for _, step := range []string{"unmount"} {
		t.Run(step, func(t *testing.T) {
			mount := "pure1-" + step
			v.MustCLI(t, "secrets", "enable", "-path="+mount, "-plugin-version="+v.PluginVersion, PluginName)
			gen := v.MustCLIJSON(t, "write", "-format=json", mount+"/config/main", "generate_key=true")
			appID := e.Register(t, jstr(t, gen, "data", "public_key"))
			v.MustCLI(t, "write", mount+"/config/main", "app_id="+appID, "token_url="+e.TokenURL())
			v.MustCLI(t, "write", mount+"/roles/r", "config=main")

			// Every token request hangs for minutes, or until the client
			// goes away.
			e.ClearFaults(t)
			e.Fault(t, Fault{Kind: "delay", Delay: "5m", Count: 50})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _, _, _ = v.Request(ctx, v.Token, "GET", mount+"/creds/r", nil) }()
			inFlight := func() (int64, string) {
				s := e.Stats(t)
				return s["in_flight"], fmt.Sprintf("emulator stats %v", s)
			}
			eventually(t, 30*time.Second, 50*time.Millisecond, "the exchange reaches the emulator", func() (bool, string) {
				n, msg := inFlight()
				return n == 1, msg
			})

			start := time.Now()
			v.MustCLI(t, "secrets", "disable", mount)
			t.Logf("%s took %s", step, time.Since(start))
			// Well inside the exchanger's 15 s attempt timeout: only Clean
			// can have ended the request this soon.
			eventually(t, 8*time.Second, 50*time.Millisecond, "the exchange in flight ends with the "+step, func() (bool, string) {
				n, msg := inFlight()
				return n == 0, msg
			})
			t.Logf("the exchange in flight ended %s after the %s began", time.Since(start), step)
			cancel()
			e.ClearFaults(t)
			if tok := v.MustCLI(t, "read", "-field=access_token", Mount+"/creds/readonly"); tok == "" {
				t.Errorf("the other mount returned no token")
			}
		})
	}
}
