//go:build tools

// Package deps pins modules the project depends on before code uses them,
// so that `go mod tidy` keeps them. It is never built.
package deps

import (
	_ "cel.dev/cel-go/cel"
	_ "github.com/coreos/go-oidc/v3/oidc"
	_ "github.com/gin-gonic/gin"
	_ "github.com/go-jose/go-jose/v4"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/hashicorp/golang-lru/v2/expirable"
	_ "github.com/modelcontextprotocol/go-sdk/mcp"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/zitadel/oidc/v3/example/server/exampleop"
	_ "github.com/zitadel/oidc/v3/example/server/storage"
	_ "github.com/zitadel/oidc/v3/pkg/op"
	_ "go.opentelemetry.io/otel"
	_ "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	_ "go.opentelemetry.io/otel/exporters/prometheus"
	_ "go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	_ "go.opentelemetry.io/otel/sdk/trace"
	_ "golang.org/x/oauth2"
	_ "golang.org/x/sync/singleflight"
	_ "golang.org/x/time/rate"
	_ "gopkg.in/yaml.v3"
)
