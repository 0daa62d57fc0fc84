// Package client mirrors the seed project's Go SDK (pkg/client) as its README shows it:
// client.New(url), EnqueueTask, SubmitDag, GetTask. Field types follow the README's example
// (json.RawMessage payloads, int priority); optional fields are sent the way a Go struct without
// omitempty sends them: zero time and zero max_retries.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

type Client struct {
	baseURL string
	http    *http.Client
}

func New(baseURL string) *Client {
	return &Client{baseURL: baseURL, http: &http.Client{Timeout: 10 * time.Second}}
}

type EnqueueTaskRequest struct {
	Type        string          `json:"type"`
	Payload     json.RawMessage `json:"payload"`
	Priority    int             `json:"priority"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	MaxRetries  int             `json:"max_retries"`
}

type DagStep struct {
	ID       string          `json:"id"`
	Type     string          `json:"type"`
	Payload  json.RawMessage `json:"payload"`
	Priority int             `json:"priority"`
}

type DagEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type SubmitDagRequest struct {
	Steps []DagStep `json:"steps"`
	Edges []DagEdge `json:"edges"`
}

type Task struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Payload      json.RawMessage `json:"payload"`
	Status       string          `json:"status"`
	Priority     int             `json:"priority"`
	ScheduledAt  time.Time       `json:"scheduled_at"`
	RetryCount   int             `json:"retry_count"`
	MaxRetries   int             `json:"max_retries"`
	ErrorMessage string          `json:"error_message"`
	CreatedAt    time.Time       `json:"created_at"`
	UpdatedAt    time.Time       `json:"updated_at"`
}

// APIError is a non-2xx answer: the status and the server's {"error": ...} message.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("taskflow: HTTP %d: %s", e.Status, e.Message) }

func (c *Client) do(ctx context.Context, method, path string, body any, want int, out any) error {
	var reader io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, reader)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		var e struct {
			Error string `json:"error"`
		}
		if jsonErr := json.Unmarshal(raw, &e); jsonErr != nil || e.Error == "" {
			return &APIError{Status: resp.StatusCode, Message: "body is not {\"error\": ...}: " + string(raw)}
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	return json.Unmarshal(raw, out)
}

func (c *Client) EnqueueTask(ctx context.Context, r EnqueueTaskRequest) (string, error) {
	var out struct {
		TaskID string `json:"task_id"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/tasks", r, http.StatusAccepted, &out)
	return out.TaskID, err
}

func (c *Client) SubmitDag(ctx context.Context, r SubmitDagRequest) (string, error) {
	var out struct {
		DagRunID string `json:"dag_run_id"`
	}
	err := c.do(ctx, http.MethodPost, "/api/v1/dags", r, http.StatusAccepted, &out)
	return out.DagRunID, err
}

func (c *Client) GetTask(ctx context.Context, id string) (*Task, error) {
	var out Task
	if err := c.do(ctx, http.MethodGet, "/api/v1/tasks/"+id, nil, http.StatusOK, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) Health(ctx context.Context) (string, error) {
	var out struct {
		Status string `json:"status"`
	}
	err := c.do(ctx, http.MethodGet, "/health", nil, http.StatusOK, &out)
	return out.Status, err
}
