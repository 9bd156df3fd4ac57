// Command etcd is etcd's own entry point, taken from the published
// go.etcd.io/etcd/server/v3 module (etcd's root main package is not a
// separately published module).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
