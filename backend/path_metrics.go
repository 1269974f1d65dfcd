package backend

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Fields of the metrics path.
const (
	fieldFormat = "format"

	metricsFormatJSON       = "json"
	metricsFormatPrometheus = "prometheus"
)

// prometheusContentType is the text exposition format's media type, which
// Prometheus picks its parser by.
var prometheusContentType = string(expfmt.NewFormat(expfmt.TypeTextPlain))

const (
	metricsHelpSynopsis    = "The engine's metrics: credentials issued, Pure1 exchanges, static tokens, keys, Pure1's rate limit."
	metricsHelpDescription = `
Reading metrics returns every series the engine exports, as JSON by default: a
map of series name to label set (such as config=main,outcome=ok) to value;
histograms give count, sum and cumulative buckets.

With format=prometheus the answer is Prometheus's text exposition format, for
Prometheus to scrape with a Vault token as its bearer credential:

  GET /v1/<mount>/metrics?format=prometheus

Counters live in the plugin process of the node that answers: they start at
zero when the plugin starts (Prometheus handles the reset). The gauges of
static tokens and keys are read from storage at each scrape, so every node
reports the same. Labels are role and config names only; nothing secret.
`
)

func pathMetrics(b *backend) []*framework.Path {
	series := make(map[string]*framework.FieldSchema, len(b.metrics.series))
	for _, s := range b.metrics.series {
		series[s.name] = &framework.FieldSchema{Type: framework.TypeMap, Description: fmt.Sprintf("%s (%s) %s", s.name, s.kind, s.help)}
	}
	return []*framework.Path{{
		Pattern: "metrics",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "pure1",
			OperationVerb:   "read",
			OperationSuffix: "metrics",
		},
		Fields: map[string]*framework.FieldSchema{
			fieldFormat: {
				Type:          framework.TypeString,
				Description:   "json (default): series, label sets and values as JSON. prometheus: Prometheus's text exposition format.",
				Default:       metricsFormatJSON,
				AllowedValues: []interface{}{metricsFormatJSON, metricsFormatPrometheus},
				Query:         true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathMetricsRead,
				Summary:  "Read the engine's metrics, as JSON or in Prometheus's text format.",
				Responses: map[int][]framework.Response{
					200: {{
						Description: "OK. With format=prometheus, the text exposition format instead (text/plain; version=0.0.4).",
						Fields:      series,
					}},
				},
			},
		},
		HelpSynopsis:    metricsHelpSynopsis,
		HelpDescription: strings.TrimSpace(metricsHelpDescription),
	}}
}

func (b *backend) pathMetricsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if err := rejectUnknownFields(req, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	format := d.Get(fieldFormat).(string)
	if format != metricsFormatJSON && format != metricsFormatPrometheus {
		return logical.ErrorResponse("format must be %s or %s, not %q", metricsFormatJSON, metricsFormatPrometheus, format), nil
	}
	st, err := b.storedState(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	families, err := b.metrics.gather(st)
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	if format == metricsFormatPrometheus {
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, f := range families {
			if err := enc.Encode(f); err != nil {
				return nil, fmt.Errorf("encoding metrics: %w", err)
			}
		}
		// A raw response: Vault writes the body as it is, with this content
		// type, instead of wrapping it in its JSON envelope. A []byte travels
		// from the plugin process intact (a string would be base64-decoded
		// by Vault where it happens to look like base64).
		return &logical.Response{Data: map[string]interface{}{
			logical.HTTPContentType: prometheusContentType,
			logical.HTTPRawBody:     buf.Bytes(),
			logical.HTTPStatusCode:  http.StatusOK,
		}}, nil
	}
	return &logical.Response{Data: b.metrics.jsonData(families)}, nil
}

// storedState reads, for one scrape, what the stored-state gauges report.
func (b *backend) storedState(ctx context.Context, s logical.Storage) (storedState, error) {
	st := storedState{now: b.now()}
	names, err := s.List(ctx, configStoragePrefix)
	if err != nil {
		return st, fmt.Errorf("listing configs: %w", err)
	}
	for _, name := range names {
		// Through the config cache: a scrape must not decode (and unwrap)
		// every seal-wrapped config each time.
		c, err := b.getConfig(ctx, s, name)
		if err != nil {
			return st, err
		}
		if c != nil { // deleted since the list
			st.keys = append(st.keys, keyStateOf(name, &c.entry))
		}
	}
	if st.static, err = b.staticTokenStates(ctx, s); err != nil {
		return st, err
	}
	entries, err := b.cleanupEntries(ctx, s)
	if err != nil {
		return st, err
	}
	st.pending = map[string]int{}
	for _, c := range entries {
		st.pending[c.Config]++
	}
	return st, nil
}

// keyStateOf is what a scrape reports of a config's keys: the active key's
// creation time (zero, and no age series, for a key stored before it was
// recorded), whether a rotation is pending, and max_key_age.
func keyStateOf(name string, e *configEntry) keyState {
	return keyState{Config: name, CreatedAt: e.KeyCreatedAt, MaxAge: e.MaxKeyAge, RotationPending: e.Pending != nil}
}

// staticTokenStates lists, for a scrape, each static role's stored token:
// its expiry, last refresh and rotation_period, read from storage so that
// whichever node is scraped reports the same.
func (b *backend) staticTokenStates(ctx context.Context, s logical.Storage) ([]staticTokenState, error) {
	names, err := s.List(ctx, staticRoleStoragePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing static roles: %w", err)
	}
	out := make([]staticTokenState, 0, len(names))
	for _, name := range names {
		role, err := b.getStaticRole(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if role == nil {
			continue
		}
		st := staticTokenState{Role: name, RotationPeriod: role.RotationPeriod}
		t, err := b.getStaticToken(ctx, s, name)
		if err != nil {
			return nil, err
		}
		if t != nil && t.AccessToken != "" {
			st.ExpiresAt, st.LastRefresh = t.ExpiresAt, t.LastRefreshed
		}
		out = append(out, st)
	}
	return out, nil
}

// jsonData is the JSON form of families: series name -> label set ->
// value, with an empty map for every declared series without samples yet.
func (m *metrics) jsonData(families []*dto.MetricFamily) map[string]interface{} {
	out := make(map[string]interface{}, len(m.series))
	for _, s := range m.series {
		out[s.name] = map[string]interface{}{}
	}
	for _, f := range families {
		samples := map[string]interface{}{}
		for _, x := range f.GetMetric() {
			samples[labelKey(x.GetLabel())] = sampleValue(f.GetType(), x)
		}
		out[f.GetName()] = samples
	}
	return out
}

// labelKey writes a label set as name=value pairs, in the label names'
// order: role and config names cannot hold "," or "=".
func labelKey(labels []*dto.LabelPair) string {
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, ",")
}

func sampleValue(t dto.MetricType, x *dto.Metric) interface{} {
	switch t {
	case dto.MetricType_COUNTER:
		return x.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return jsonFloat(x.GetGauge().GetValue())
	case dto.MetricType_HISTOGRAM:
		h := x.GetHistogram()
		buckets := make(map[string]interface{}, len(h.GetBucket())+1)
		for _, bk := range h.GetBucket() {
			buckets[strconv.FormatFloat(bk.GetUpperBound(), 'g', -1, 64)] = bk.GetCumulativeCount()
		}
		buckets["+Inf"] = h.GetSampleCount()
		return map[string]interface{}{"count": h.GetSampleCount(), "sum": h.GetSampleSum(), "buckets": buckets}
	}
	return nil
}

// jsonFloat keeps values JSON can carry: NaN and infinities cannot be encoded.
func jsonFloat(v float64) interface{} {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return v
}
