// Command pure1-token prints a Pure1 API JWT (or, with --exchange, an access
// token) for a Pure1 application. It is a drop-in for the Python "token
// factory" script, built on the same key and JWT code as the Vault plugin.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
