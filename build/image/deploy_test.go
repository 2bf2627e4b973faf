package image

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var imageLine = regexp.MustCompile(`(?m)^\s*-?\s*image:\s*"?([^\s"]+)"?\s*$`)

// Every petset image that deploy/ (and its examples) references is one
// that `make images` builds, under the same registry, and all of them
// carry one tag: the release deploy/ installs.
func TestDeployReferencesBuiltImages(t *testing.T) {
	deploy := filepath.Join(repoRoot(t), "deploy")
	built := map[string]bool{}
	for _, b := range Binaries {
		built[b.Name] = true
	}
	tags := map[string][]string{}
	seen := map[string]bool{}
	err := filepath.WalkDir(deploy, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range imageLine.FindAllStringSubmatch(string(b), -1) {
			ref := m[1]
			if !strings.HasPrefix(ref, Registry+"/") {
				continue
			}
			nameTag := strings.TrimPrefix(ref, Registry+"/")
			name, tag, ok := strings.Cut(nameTag, ":")
			if !ok || tag == "" {
				t.Errorf("%s: %s has no tag", p, ref)
				continue
			}
			if !built[name] {
				t.Errorf("%s: %s is not an image make images builds", p, ref)
			}
			seen[name] = true
			tags[tag] = append(tags[tag], p+": "+ref)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 1 {
		t.Errorf("deploy/ references petset images under %d tags, want one: %v", len(tags), tags)
	}
	for _, b := range Binaries {
		if !seen[b.Name] {
			t.Errorf("deploy/ never references %s/%s", Registry, b.Name)
		}
	}
}
