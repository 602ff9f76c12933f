package alibaba

import (
	"github.com/imagerelay/imagerelay/functions/fanout"
	"github.com/imagerelay/imagerelay/functions/poller"
	"github.com/imagerelay/imagerelay/functions/replicate"
)

// The provider implements the three ports the replication functions use.
var (
	_ replicate.MultiRegionCopier = (*Provider)(nil)
	_ poller.StatusReader         = (*Provider)(nil)
	_ fanout.ConstraintChecker    = (*Provider)(nil)
)
