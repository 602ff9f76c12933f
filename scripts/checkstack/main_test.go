package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/imagerelay/imagerelay/shared/compose/catalog"
)

// testdata/template.json is what `serverless package` generated from serverless.yml.
func load(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile("testdata/template.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func resources(m map[string]any) map[string]any { return m["Resources"].(map[string]any) }

func props(m map[string]any, id string) map[string]any {
	return resources(m)[id].(map[string]any)["Properties"].(map[string]any)
}

func statements(m map[string]any, role string) []any {
	pols := props(m, role)["Policies"].([]any)
	return pols[0].(map[string]any)["PolicyDocument"].(map[string]any)["Statement"].([]any)
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		want   string // a problem that must be reported; "" for none
	}{
		{name: "generated template", mutate: func(map[string]any) {}},
		{name: "extra action", want: "action s3:GetObject", mutate: func(m map[string]any) {
			st := statements(m, "PollerRole")
			st[0].(map[string]any)["Action"] = []any{"logs:CreateLogStream", "logs:PutLogEvents", "s3:GetObject"}
		}},
		{name: "wildcard action", want: "action sqs:*", mutate: func(m map[string]any) {
			statements(m, "ReplicateRole")[1].(map[string]any)["Action"] = "sqs:*"
		}},
		{name: "every resource", want: "allows every resource", mutate: func(m map[string]any) {
			statements(m, "RebuildRole")[1].(map[string]any)["Resource"] = "*"
		}},
		{name: "queue actions for a function without a queue", want: "action sqs:ReceiveMessage", mutate: func(m map[string]any) {
			statements(m, "PollerRole")[1].(map[string]any)["Action"] = []any{"sqs:SendMessage", "sqs:ReceiveMessage"}
		}},
		{name: "shared role", want: "share role", mutate: func(m map[string]any) {
			props(m, "PollerLambdaFunction")["Role"] = map[string]any{"Fn::GetAtt": []any{"ReplicateRole", "Arn"}}
		}},
		{name: "managed policy", want: "managed policies", mutate: func(m map[string]any) {
			props(m, "FanoutRole")["ManagedPolicyArns"] = []any{"arn:aws:iam::aws:policy/AdministratorAccess"}
		}},
		{name: "no partial batch failures", want: "ReportBatchItemFailures", mutate: func(m map[string]any) {
			delete(props(m, "FanoutEventSourceMappingSQSIntakeQueue"), "FunctionResponseTypes")
		}},
		{name: "rule without dead-letter queue", want: "no dead-letter queue", mutate: func(m map[string]any) {
			tg := props(m, "Imagerelaydevfanoutrule1EventBridgeRule")["Targets"].([]any)[0].(map[string]any)
			delete(tg, "DeadLetterConfig")
		}},
		{name: "function missing", want: "function rebuild is missing", mutate: func(m map[string]any) {
			delete(resources(m), "RebuildLambdaFunction")
		}},
		{name: "x86", want: "architectures", mutate: func(m map[string]any) {
			props(m, "FanoutLambdaFunction")["Architectures"] = []any{"x86_64"}
		}},
		{name: "no schedule", want: "poller: no schedule", mutate: func(m map[string]any) {
			delete(resources(m), "Imagerelaydevpollerrule1EventBridgeRule")
		}},
		{name: "default shared role", want: "IamRoleLambdaExecution", mutate: func(m map[string]any) {
			resources(m)["IamRoleLambdaExecution"] = map[string]any{"Type": "AWS::IAM::Role", "Properties": map[string]any{}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := load(t)
			tt.mutate(m)
			raw, _ := json.Marshal(m)
			errs := Check(raw, catalog.FunctionNames)
			if tt.want == "" {
				for _, e := range errs {
					t.Error(e)
				}
				return
			}
			for _, e := range errs {
				if strings.Contains(e.Error(), tt.want) {
					return
				}
			}
			t.Errorf("problems %v do not mention %q", errs, tt.want)
		})
	}
}
