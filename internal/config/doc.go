// Package config fills a flag.FlagSet from three places, strongest first:
// the command line, MDGATE_* environment variables, and a config file.
//
// The environment variable of flag "ingress-bind" is MDGATE_INGRESS_BIND; a
// repeatable flag (a List) takes a comma-separated list there. The file has
// one "name = value" per line (the flag's name without dashes), "#" starts a
// comment, and a repeatable flag may appear on several lines.
package config
