package config

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// EnvPrefix starts every environment variable this package reads.
const EnvPrefix = "MDGATE_"

// List is a repeatable string flag. The first value given replaces the
// default; later ones append.
type List struct {
	vals    []string
	touched bool
}

// NewList returns a List holding defaults.
func NewList(defaults ...string) *List { return &List{vals: defaults} }

func (l *List) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.vals, ",")
}

// Set appends v, dropping the defaults on the first call.
func (l *List) Set(v string) error {
	if !l.touched {
		l.vals, l.touched = nil, true
	}
	if v != "" {
		l.vals = append(l.vals, v)
	}
	return nil
}

// Values returns the list's values.
func (l *List) Values() []string { return append([]string(nil), l.vals...) }

// EnvName returns the environment variable for a flag name.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Load parses args into fs, then sets every flag the command line left alone
// from the environment (lookup, usually os.LookupEnv) and then from the file
// named by the flag fileFlag, if that flag is set.
func Load(fs *flag.FlagSet, args []string, lookup func(string) (string, bool), fileFlag string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	onCLI := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCLI[f.Name] = true })

	fromEnv := map[string]bool{}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if onCLI[f.Name] {
			return
		}
		v, ok := lookup(EnvName(f.Name))
		if !ok {
			return
		}
		fromEnv[f.Name] = true
		if err := setAll(f, v, true); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvName(f.Name), err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if fileFlag == "" {
		return nil
	}
	path := fs.Lookup(fileFlag).Value.String()
	if path == "" {
		return nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer fh.Close()
	return applyFile(fs, fh, path, func(name string) bool { return onCLI[name] || fromEnv[name] || name == fileFlag })
}

func setAll(f *flag.Flag, v string, split bool) error {
	if _, ok := f.Value.(*List); ok && split {
		for _, part := range strings.Split(v, ",") {
			if err := f.Value.Set(strings.TrimSpace(part)); err != nil {
				return err
			}
		}
		return nil
	}
	return f.Value.Set(v)
}

// applyFile reads "name = value" lines; names in skip are left alone.
func applyFile(fs *flag.FlagSet, r io.Reader, path string, skip func(string) bool) error {
	sc := bufio.NewScanner(r)
	var errs []error
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("%s:%d: want name = value, got %q", path, n, line))
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			errs = append(errs, fmt.Errorf("%s:%d: unknown option %q", path, n, name))
			continue
		}
		if skip(name) {
			continue
		}
		if err := f.Value.Set(value); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %w", path, n, name, err))
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", path, err))
	}
	return errors.Join(errs...)
}
