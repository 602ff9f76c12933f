// Command checkstack checks the CloudFormation template that `serverless package` generates
// from serverless.yml: every function is there (provided.al2023, arm64, bootstrap, its own
// artifact), with its triggers (the drain schedule, and for fanout the EventBridge pattern and
// the SQS intake with ReportBatchItemFailures), retry policies and the dead-letter queue; and
// every function has its own IAM role allowing no action beyond what it uses.
//
//	go run ./scripts/checkstack [.serverless/cloudformation-template-update-stack.json]
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/imagerelay/imagerelay/shared/compose/catalog"
)

// Template is the part of a CloudFormation template the checks read.
type Template struct {
	Resources map[string]Resource `json:"Resources"`
}

// Resource is one CloudFormation resource.
type Resource struct {
	Type       string          `json:"Type"`
	Properties json.RawMessage `json:"Properties"`
}

// Expect says what one function must have.
type Expect struct {
	// Pattern is the EventBridge detail-type it is triggered by, if any.
	Pattern string
	// SQS is true when an SQS queue triggers it with partial batch failures.
	SQS bool
	// Actions are the IAM actions its role may allow.
	Actions []string
}

// baseActions are what every function's role needs: writing its logs, and sending failed
// asynchronous invocations to the dead-letter queue (Lambda does that with the function's role).
var baseActions = []string{"logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage"}

// Expectations returns what each function must have; functions not named get the base.
func Expectations(functions []string) map[string]Expect {
	out := map[string]Expect{}
	for _, f := range functions {
		out[f] = Expect{Actions: baseActions}
	}
	out["fanout"] = Expect{Pattern: "io.imagerelay.image.published", SQS: true,
		Actions: append(slices.Clone(baseActions), "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")}
	return out
}

func main() {
	path := ".serverless/cloudformation-template-update-stack.json"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "checkstack: %v (run `npx serverless package` first)\n", err)
		os.Exit(1)
	}
	errs := Check(raw, catalog.FunctionNames)
	for _, e := range errs {
		fmt.Fprintln(os.Stderr, "checkstack:", e)
	}
	if len(errs) > 0 {
		os.Exit(1)
	}
	fmt.Printf("checkstack: %s: %d functions with their triggers, the dead-letter queue and least-privilege roles\n", path, len(catalog.FunctionNames))
}

// Check returns every problem of the template.
func Check(raw []byte, functions []string) []error {
	var t Template
	if err := json.Unmarshal(raw, &t); err != nil {
		return []error{fmt.Errorf("template: %w", err)}
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	dlq := ""
	for id, r := range t.Resources {
		if r.Type == "AWS::SQS::Queue" && strings.Contains(strings.ToLower(id), "deadletter") {
			dlq = id
		}
	}
	if dlq == "" {
		fail("no dead-letter queue (an AWS::SQS::Queue named DeadLetter...)")
	}

	expect := Expectations(functions)
	lambdas := map[string]string{} // function → logical id
	roles := map[string]string{}   // role logical id → function
	for id, r := range t.Resources {
		if r.Type != "AWS::Lambda::Function" {
			continue
		}
		var p struct {
			FunctionName  string
			Runtime       string
			Handler       string
			Architectures []string
			Role          any
			Code          struct{ S3Key string }
		}
		if err := json.Unmarshal(r.Properties, &p); err != nil {
			fail("%s: %v", id, err)
			continue
		}
		fn := p.FunctionName[strings.LastIndex(p.FunctionName, "-")+1:]
		if _, ok := expect[fn]; !ok {
			fail("%s: function %q is not one of %v", id, p.FunctionName, functions)
			continue
		}
		lambdas[fn] = id
		if p.Runtime != "provided.al2023" || p.Handler != "bootstrap" || !slices.Equal(p.Architectures, []string{"arm64"}) {
			fail("%s: runtime %q handler %q architectures %v, want provided.al2023, bootstrap, [arm64]", fn, p.Runtime, p.Handler, p.Architectures)
		}
		if !strings.HasSuffix(p.Code.S3Key, "/"+fn+".zip") {
			fail("%s: artifact %q is not %s.zip from make package", fn, p.Code.S3Key, fn)
		}
		role := getAtt(p.Role)
		if role == "" {
			fail("%s: its role is not a role of this stack", fn)
		} else if other, ok := roles[role]; ok {
			fail("%s and %s share role %s; each function needs its own", fn, other, role)
		} else {
			roles[role] = fn
		}
	}
	for _, fn := range functions {
		if _, ok := lambdas[fn]; !ok {
			fail("function %s is missing", fn)
		}
	}

	// Triggers.
	schedules, patterns, queues := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for id, r := range t.Resources {
		switch r.Type {
		case "AWS::Events::Rule":
			var p struct {
				ScheduleExpression string
				EventPattern       map[string]any
				Targets            []struct {
					Arn              any
					RetryPolicy      *struct{ MaximumRetryAttempts *int }
					DeadLetterConfig *struct{ Arn any }
				}
			}
			if err := json.Unmarshal(r.Properties, &p); err != nil {
				fail("%s: %v", id, err)
				continue
			}
			for _, tg := range p.Targets {
				fn := functionOf(lambdas, getAtt(tg.Arn))
				if fn == "" {
					fail("%s: targets something that is not one of the functions", id)
					continue
				}
				if tg.RetryPolicy == nil || tg.RetryPolicy.MaximumRetryAttempts == nil {
					fail("%s (%s): no retry policy", id, fn)
				}
				if tg.DeadLetterConfig == nil || getAtt(tg.DeadLetterConfig.Arn) != dlq {
					fail("%s (%s): no dead-letter queue", id, fn)
				}
				if p.ScheduleExpression != "" {
					schedules[fn] = true
				}
				if dt, ok := p.EventPattern["detail-type"].([]any); ok && slices.Contains(dt, any(expect[fn].Pattern)) && expect[fn].Pattern != "" {
					patterns[fn] = true
				}
			}
		case "AWS::Lambda::EventSourceMapping":
			var p struct {
				FunctionName          any
				EventSourceArn        any
				FunctionResponseTypes []string
			}
			if err := json.Unmarshal(r.Properties, &p); err != nil {
				fail("%s: %v", id, err)
				continue
			}
			fn := functionOf(lambdas, getAtt(p.FunctionName))
			if !slices.Contains(p.FunctionResponseTypes, "ReportBatchItemFailures") {
				fail("%s (%s): without ReportBatchItemFailures one failing message fails its whole batch", id, fn)
			}
			queues[fn] = true
		case "AWS::Lambda::EventInvokeConfig":
			var p struct {
				FunctionName      any
				DestinationConfig struct{ OnFailure struct{ Destination any } }
			}
			if err := json.Unmarshal(r.Properties, &p); err != nil {
				fail("%s: %v", id, err)
				continue
			}
			if getAtt(p.DestinationConfig.OnFailure.Destination) != dlq {
				fail("%s: failed asynchronous invocations do not go to the dead-letter queue", id)
			}
		}
	}
	for _, fn := range functions {
		e := expect[fn]
		if !schedules[fn] {
			fail("%s: no schedule draining its JetStream consumer", fn)
		}
		if e.Pattern != "" && !patterns[fn] {
			fail("%s: no EventBridge rule for detail-type %s", fn, e.Pattern)
		}
		if e.SQS != queues[fn] {
			fail("%s: SQS trigger %v, want %v", fn, queues[fn], e.SQS)
		}
	}

	// IAM: only the functions' own roles, each allowing only what its function uses.
	for id, r := range t.Resources {
		switch r.Type {
		case "AWS::IAM::Role":
			fn, ok := roles[id]
			if !ok {
				fail("role %s belongs to no function", id)
				continue
			}
			errs = append(errs, checkRole(id, fn, r.Properties, expect[fn].Actions)...)
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			fail("%s (%s): permissions outside the functions' roles", id, r.Type)
		}
	}
	return errs
}

// checkRole checks one role's policies.
func checkRole(id, fn string, props json.RawMessage, allowed []string) []error {
	var p struct {
		ManagedPolicyArns []any
		Policies          []struct {
			PolicyDocument struct {
				Statement []struct {
					Effect   string
					Action   any
					Resource any
				}
			}
		}
	}
	if err := json.Unmarshal(props, &p); err != nil {
		return []error{fmt.Errorf("%s: %w", id, err)}
	}
	var errs []error
	if len(p.ManagedPolicyArns) > 0 {
		errs = append(errs, fmt.Errorf("%s (%s): managed policies %v grant more than the function uses", id, fn, p.ManagedPolicyArns))
	}
	for _, pol := range p.Policies {
		for _, st := range pol.PolicyDocument.Statement {
			if st.Effect != "Allow" {
				continue
			}
			for _, a := range strings1(st.Action) {
				if strings.Contains(a, "*") || !slices.Contains(allowed, a) {
					errs = append(errs, fmt.Errorf("%s (%s): action %s is not one the function uses (%v)", id, fn, a, allowed))
				}
			}
			if slices.Contains(strings1(st.Resource), "*") {
				errs = append(errs, fmt.Errorf("%s (%s): a statement allows every resource", id, fn))
			}
		}
	}
	return errs
}

// getAtt returns the logical id of {"Fn::GetAtt": [id, attr]} or {"Ref": id}.
func getAtt(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) > 0 {
		s, _ := ga[0].(string)
		return s
	}
	if r, ok := m["Ref"].(string); ok {
		return r
	}
	return ""
}

// functionOf returns the function whose logical id is id.
func functionOf(lambdas map[string]string, id string) string {
	for fn, lid := range lambdas {
		if lid == id {
			return fn
		}
	}
	return ""
}

// strings1 reads a string or a list of strings.
func strings1(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
