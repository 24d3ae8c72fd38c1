package hub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/cemaf-go/cemaf/remote/hub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		name string
		opts hub.Options
		want string
	}{
		{"no store", hub.Options{}, "StoreDir"},
		{"payload", hub.Options{StoreDir: t.TempDir(), MaxPayload: 128 << 20}, "MaxPayload"},
		{"port", hub.Options{StoreDir: t.TempDir(), Port: 70000}, "Port = 70000"},
		{"leaf port", hub.Options{StoreDir: t.TempDir(), LeafPort: -1}, "LeafPort"},
		{"connections", hub.Options{StoreDir: t.TempDir(), MaxConnections: -2}, "MaxConnections"},
		{"leaf url", hub.Options{StoreDir: t.TempDir(), Leaf: []string{"://bad"}}, "Options.Leaf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hub.Start(tt.opts)
			require.ErrorContains(t, err, tt.want)
			require.True(t, strings.HasPrefix(err.Error(), "hub: "), err.Error())
		})
	}
}

func TestStartServesLoopbackWithJetStream(t *testing.T) {
	h, err := hub.Start(hub.Options{StoreDir: t.TempDir(), Port: hub.RandomPort, MaxPayload: 64 << 10})
	require.NoError(t, err)
	defer h.Close()
	require.True(t, strings.HasPrefix(h.ClientURL(), "nats://127.0.0.1:"), h.ClientURL())
	require.Empty(t, h.LeafURL())
	nc, err := nats.Connect(h.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	require.Equal(t, int64(64<<10), nc.MaxPayload())
	require.Equal(t, 1, h.NumClients())
	// JetStream answers.
	_, err = nc.Request("$JS.API.INFO", nil, 2*time.Second)
	require.NoError(t, err)
}
