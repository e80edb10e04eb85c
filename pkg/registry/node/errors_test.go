package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/michael/k8s-cloud-node-manager/pkg/cloud"
)

func TestCloudErrorMapping(t *testing.T) {
	inst := cloud.Instance{Provider: "aws", ID: "i-0123456789abcdef0", Region: "us-east-1"}
	cases := []struct {
		err         error
		code        int32
		reason      metav1.StatusReason
		retryAfter  int32
		didNothing  bool
		wantCauseID bool
	}{
		{&cloud.Error{Kind: cloud.ErrNotFound, Code: "InvalidInstanceID.NotFound", RequestID: "r1"}, 422, metav1.StatusReasonInvalid, 0, true, false},
		{&cloud.Error{Kind: cloud.ErrNotOwned, Code: "ClusterTagMissing", RequestID: "r6"}, 422, metav1.StatusReasonInvalid, 0, true, false},
		{&cloud.Error{Kind: cloud.ErrInvalidState, Code: "IncorrectState", RequestID: "r2"}, 409, metav1.StatusReasonConflict, 0, true, true},
		{&cloud.Error{Kind: cloud.ErrThrottled, Code: "RequestLimitExceeded", RetryAfter: 2500 * time.Millisecond, RequestID: "r3"}, 429, metav1.StatusReasonTooManyRequests, 3, true, true},
		{&cloud.Error{Kind: cloud.ErrThrottled, Code: "ClientRateLimited"}, 429, metav1.StatusReasonTooManyRequests, 1, true, false},
		{&cloud.Error{Kind: cloud.ErrUnauthorized, Code: "AuthFailure", RequestID: "r4"}, 502, StatusReasonBadGateway, 0, true, true},
		{&cloud.Error{Kind: cloud.ErrTimeout, Err: context.DeadlineExceeded}, 504, metav1.StatusReasonTimeout, 0, false, false},
		{&cloud.Error{Kind: cloud.ErrUnavailable, Code: "InternalError", RequestID: "r5"}, 502, StatusReasonBadGateway, 0, false, true},
		{fmt.Errorf("wrapped: %w", &cloud.Error{Kind: cloud.ErrInvalidState}), 409, metav1.StatusReasonConflict, 0, true, false},
		{errors.New("a driver bug"), 502, StatusReasonBadGateway, 0, false, false},
		{fmt.Errorf("stop: %w", ErrUnsupported), 422, metav1.StatusReasonInvalid, 0, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			err := cloudError("node-1", "restart", inst, tc.err)
			s := err.(apierrors.APIStatus).Status()
			if s.Code != tc.code || s.Reason != tc.reason {
				t.Fatalf("want %d %s, got %d %s: %s", tc.code, tc.reason, s.Code, s.Reason, s.Message)
			}
			if s.Details == nil || s.Details.RetryAfterSeconds != tc.retryAfter {
				t.Fatalf("want Retry-After %d, got %+v", tc.retryAfter, s.Details)
			}
			found := false
			for _, c := range s.Details.Causes {
				found = found || c.Type == "CloudRequestID"
			}
			if found != tc.wantCauseID {
				t.Fatalf("cloud request ID cause present=%v, want %v: %+v", found, tc.wantCauseID, s.Details.Causes)
			}
			if got := cloudDidNothing(tc.err); got != tc.didNothing {
				t.Fatalf("cloudDidNothing = %v, want %v", got, tc.didNothing)
			}
			if s.Code == http.StatusInternalServerError {
				t.Fatal("never a bare 500")
			}
		})
	}
}
