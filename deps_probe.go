//go:build depsprobe

package deps

import (
	_ "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	_ "github.com/alibabacloud-go/darabonba-openapi/v2/utils"
	_ "github.com/alibabacloud-go/tea/dara"
	_ "github.com/aliyun/fc-runtime-go-sdk/fc"
	_ "github.com/aliyun/fc-runtime-go-sdk/fccontext"
	_ "github.com/aliyun/fc-runtime-go-sdk/events"
	_ "github.com/aws/aws-lambda-go/events"
	_ "github.com/aws/aws-lambda-go/lambda"
	_ "github.com/aws/aws-lambda-go/lambdacontext"
	_ "github.com/cloudevents/sdk-go/v2"
	_ "github.com/goccy/go-yaml"
	_ "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/auth/basic"
	_ "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/config"
	_ "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/region"
	_ "github.com/huaweicloud/huaweicloud-sdk-go-v3/core/sdkerr"
	_ "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ims/v2"
	_ "github.com/huaweicloud/huaweicloud-sdk-go-v3/services/ims/v2/model"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/spf13/cobra"
	_ "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common"
	_ "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/errors"
	_ "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/common/profile"
	_ "github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/cvm/v20170312"
	_ "golang.org/x/time/rate"
)
