"""otel-claude: OpenTelemetry for the Anthropic SDK that tunes itself."""
