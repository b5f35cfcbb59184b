package credentials

// FlowNone is the credentials.flow value of this flow.
const FlowNone = "none"

// noneType is flow none: a public upstream, no token and no Authorization
// header. It has no configuration and no Flow (its Source returns a nil
// Token).
var noneType = &FlowType{
	Name: FlowNone,
	Bare: true,
	Parse: func(*FlowType, *Config) FlowConfig {
		return nil
	},
}
