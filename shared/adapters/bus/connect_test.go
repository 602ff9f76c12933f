package bus_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/imagerelay/imagerelay/shared/adapters/bus"
)

// operatorServer starts a nats-server in operator (JWT) mode with one account, and returns
// its URL and a function that issues .creds file contents for a new user of that account.
func operatorServer(t *testing.T) (string, func() []byte) {
	t.Helper()
	operator, _ := nkeys.CreateOperator()
	opPub, _ := operator.PublicKey()
	opJWT, err := jwt.NewOperatorClaims(opPub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	opClaims, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	account, _ := nkeys.CreateAccount()
	accPub, _ := account.PublicKey()
	accJWT, err := jwt.NewAccountClaims(accPub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	if err := resolver.Store(accPub, accJWT); err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TrustedOperators: []*jwt.OperatorClaims{opClaims}, AccountResolver: resolver,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	issue := func() []byte {
		user, _ := nkeys.CreateUser()
		userPub, _ := user.PublicKey()
		userJWT, err := jwt.NewUserClaims(userPub).Encode(account)
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := user.Seed()
		creds, err := jwt.FormatUserConfig(userJWT, seed)
		if err != nil {
			t.Fatal(err)
		}
		return creds
	}
	return ns.ClientURL(), issue
}

func TestConnectWithCredentialsContents(t *testing.T) {
	url, issue := operatorServer(t)
	good := issue()
	// The seed of another user does not sign for this user's JWT.
	other := issue()
	mismatched := []byte(strings.Split(string(good), "************************* IMPORTANT")[0] +
		"************************* IMPORTANT" + strings.SplitN(string(other), "************************* IMPORTANT", 2)[1])

	tests := []struct {
		name    string
		creds   []byte
		invalid bool // rejected before connecting, naming what is missing
		want    string
	}{
		{name: "whole creds file", creds: good},
		{name: "no credentials at all", creds: nil, want: "Authorization Violation"},
		{name: "seed of another user", creds: mismatched, want: "Authorization Violation"},
		{name: "not a creds file", creds: []byte("not a creds file"), invalid: true, want: "no user JWT"},
		{name: "JWT block only", creds: []byte(strings.SplitN(string(good), "************************* IMPORTANT", 2)[0]), invalid: true, want: "no user nkey seed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := bus.Connect(bus.ConnectOptions{URL: url, Creds: tt.creds, FailFast: true})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				defer nc.Close()
				if err := nc.Flush(); err != nil {
					t.Fatalf("flush: %v", err)
				}
				return
			}
			if err == nil {
				nc.Close()
				t.Fatal("connect succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if got := errors.Is(err, bus.ErrInvalidConfig); got != tt.invalid {
				t.Errorf("errors.Is(err, ErrInvalidConfig) = %v, want %v (%v)", got, tt.invalid, err)
			}
			for _, line := range strings.Split(string(tt.creds), "\n") {
				if strings.HasPrefix(line, "SU") && strings.Contains(err.Error(), line) {
					t.Error("the error repeats the seed")
				}
			}
		})
	}
}
