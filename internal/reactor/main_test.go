package reactor_test

import (
	"testing"

	"github.com/glibaio/glibaio/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }
