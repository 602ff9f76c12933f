package rebuildwire

import (
	"testing"

	"github.com/imagerelay/imagerelay/shared/adapters/state/memkv"
	"github.com/imagerelay/imagerelay/shared/compose"
	"github.com/imagerelay/imagerelay/shared/config"
)

// Without a rebuild policy the rebuild spec is idle (its worker reads no event); with one, as
// in the shipped sample file, it is not.
func TestSpecIsIdleWithoutAPolicy(t *testing.T) {
	none := config.Defaults()
	none.Rebuild.Policies = nil
	if s := Spec(&compose.Env{Config: none, Store: memkv.NewStore()}, nil, nil); s.Idle == "" {
		t.Error("rebuild without a policy is not idle")
	}
	sample, err := config.LoadWithEnv("../../../imagerelay.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if s := Spec(&compose.Env{Config: sample, Store: memkv.NewStore()}, nil, nil); s.Idle != "" {
		t.Errorf("rebuild with the sample file's policies is idle: %s", s.Idle)
	}
}
