// Drives the seed-shaped Go client against a running Taskflow API and prints what it saw as JSON,
// for tests/e2e/test_go_client.py to check.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"taskflow.test/goclient/client"
)

type report struct {
	Health    string           `json:"health"`
	TaskID    string           `json:"task_id"`
	Task      *client.Task     `json:"task"`
	DagRunID  string           `json:"dag_run_id"`
	Delayed   *client.Task     `json:"delayed"`
	NotFound  *client.APIError `json:"not_found"`
	Malformed *client.APIError `json:"malformed"`
	Cycle     *client.APIError `json:"cycle"`
}

func apiError(err error) *client.APIError {
	var e *client.APIError
	if errors.As(err, &e) {
		return e
	}
	fail("expected an API error, got %v", err)
	return nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := client.New(os.Args[1])
	var r report
	var err error

	if r.Health, err = c.Health(ctx); err != nil {
		fail("health: %v", err)
	}
	// The README's own example, verbatim apart from error handling.
	r.TaskID, err = c.EnqueueTask(ctx, client.EnqueueTaskRequest{
		Type:     "echo",
		Payload:  json.RawMessage(`{"key":"value"}`),
		Priority: 1,
	})
	if err != nil {
		fail("enqueue: %v", err)
	}
	for {
		if r.Task, err = c.GetTask(ctx, r.TaskID); err != nil {
			fail("get: %v", err)
		}
		if r.Task.Status == "completed" || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.DagRunID, err = c.SubmitDag(ctx, client.SubmitDagRequest{
		Steps: []client.DagStep{{ID: "a", Type: "noop", Payload: []byte("{}")}, {ID: "b", Type: "noop", Payload: []byte("{}")}},
		Edges: []client.DagEdge{{From: "a", To: "b"}},
	})
	if err != nil {
		fail("dag: %v", err)
	}
	delayedID, err := c.EnqueueTask(ctx, client.EnqueueTaskRequest{
		Type: "noop", Payload: json.RawMessage(`null`), ScheduledAt: time.Now().Add(time.Hour), MaxRetries: 5,
	})
	if err != nil {
		fail("delayed: %v", err)
	}
	if r.Delayed, err = c.GetTask(ctx, delayedID); err != nil {
		fail("get delayed: %v", err)
	}
	_, err = c.GetTask(ctx, "0190b0a4-0000-7000-8000-000000000000")
	r.NotFound = apiError(err)
	_, err = c.GetTask(ctx, "not-a-uuid")
	r.Malformed = apiError(err)
	_, err = c.SubmitDag(ctx, client.SubmitDagRequest{
		Steps: []client.DagStep{{ID: "a", Type: "noop"}, {ID: "b", Type: "noop"}},
		Edges: []client.DagEdge{{From: "a", To: "b"}, {From: "b", To: "a"}},
	})
	r.Cycle = apiError(err)

	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
