package fakecloud

import (
	"errors"
	"testing"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

// OneCall asserts a fake saw exactly one call, and returns it: a driver's
// tests use it to prove a reboot was sent once, never retried.
func OneCall(t testing.TB, f interface{ Calls() []Call }) Call {
	t.Helper()
	calls := f.Calls()
	if len(calls) != 1 {
		t.Fatalf("the fake saw %d calls, want exactly 1: %+v", len(calls), calls)
	}
	return calls[0]
}

// WantCloudError asserts err is a *cloud.Error of the provider, kind and
// (when not empty) the cloud's error code, and returns it.
func WantCloudError(t testing.TB, provider string, err error, kind cloud.ErrorKind, code string) *cloud.Error {
	t.Helper()
	var ce *cloud.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *cloud.Error", err, err)
	}
	if ce.Kind != kind || (code != "" && ce.Code != code) || ce.Provider != provider {
		t.Fatalf("got %s/%s from %s (%v), want %s/%s from %s", ce.Kind, ce.Code, ce.Provider, err, kind, code, provider)
	}
	return ce
}
