//go:build ignore

package nofiles

func Hidden() {}
