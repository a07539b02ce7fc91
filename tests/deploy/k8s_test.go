package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// newObject returns an empty typed object for each kind we ship; any other
// kind fails the test, so a new kind is added here with its checks.
func newObject(kind string) (any, bool) {
	switch kind {
	case "Namespace":
		return &corev1.Namespace{}, true
	case "ConfigMap":
		return &corev1.ConfigMap{}, true
	case "Secret":
		return &corev1.Secret{}, true
	case "Service":
		return &corev1.Service{}, true
	case "Deployment":
		return &appsv1.Deployment{}, true
	case "PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "Ingress":
		return &networkingv1.Ingress{}, true
	}
	return nil, false
}

// TestKubernetesFilesStrict decodes every YAML file under k8s/ strictly:
// kustomizations into kustomize's type, everything else (resources and
// patches) into the k8s.io/api type of its kind, so an unknown or misspelt
// field fails. Every path a kustomization names must exist.
func TestKubernetesFilesStrict(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(root, "k8s")
	var files int
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		files++
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if d.Name() == "kustomization.yaml" {
			checkKustomization(t, path, b)
			return nil
		}
		for i, doc := range splitYAML(t, path, b) {
			if _, err := decodeStrict(doc); err != nil {
				t.Errorf("%s document %d: %v", path, i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 8 {
		t.Errorf("found only %d YAML files under k8s/", files)
	}
}

func checkKustomization(t *testing.T, path string, b []byte) {
	t.Helper()
	var k kusttypes.Kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	refs := slices.Clone(k.Resources)
	for _, p := range k.Patches {
		if p.Path != "" {
			refs = append(refs, p.Path)
		}
	}
	refs = append(refs, k.Components...)
	for _, r := range refs {
		if _, err := os.Stat(filepath.Join(filepath.Dir(path), r)); err != nil {
			t.Errorf("%s names %s: %v", path, r, err)
		}
	}
}

// TestKustomizeOverlays builds each overlay with kustomize's own engine (what
// `kubectl apply -k` runs) and checks the rendered objects.
func TestKustomizeOverlays(t *testing.T) {
	t.Parallel()
	for _, overlay := range []string{"dev", "production"} {
		t.Run(overlay, func(t *testing.T) {
			t.Parallel()
			objs := build(t, filepath.Join(root, "k8s", "overlays", overlay))
			checkRendered(t, overlay, objs)
		})
	}
}

type rendered struct {
	deployments []*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
	ingresses   []*networkingv1.Ingress
}

func build(t *testing.T, dir string) rendered {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, doc := range splitYAML(t, dir, out) {
		obj, err := decodeStrict(doc)
		if err != nil {
			t.Errorf("rendered object: %v\n%s", err, doc)
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			r.deployments = append(r.deployments, o)
		case *corev1.Service:
			r.services[o.Name] = o
		case *corev1.ConfigMap:
			r.configMaps[o.Name] = o
		case *corev1.Secret:
			r.secrets[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			r.pdbs = append(r.pdbs, o)
		case *networkingv1.Ingress:
			r.ingresses = append(r.ingresses, o)
		}
	}
	return r
}

func checkRendered(t *testing.T, overlay string, r rendered) {
	if len(r.deployments) == 0 {
		t.Fatal("no Deployment rendered")
	}
	targets := map[string]bool{}
	for _, d := range r.deployments {
		checkDeployment(t, d, r)
		targets[targetOf(d)] = true
	}
	if !targets["intake"] {
		t.Error("no Deployment runs --target=intake")
	}

	// Every Service selects the pods of some Deployment.
	for name, svc := range r.services {
		if !slices.ContainsFunc(r.deployments, func(d *appsv1.Deployment) bool {
			return selects(svc.Spec.Selector, d.Spec.Template.Labels)
		}) {
			t.Errorf("Service %s selects no Deployment's pods", name)
		}
	}
	// Every PDB covers some Deployment.
	for _, p := range r.pdbs {
		sel, err := metav1.LabelSelectorAsMap(p.Spec.Selector)
		if err != nil || !slices.ContainsFunc(r.deployments, func(d *appsv1.Deployment) bool { return selects(sel, d.Spec.Template.Labels) }) {
			t.Errorf("PodDisruptionBudget %s covers no Deployment (%v)", p.Name, err)
		}
	}
	for _, d := range r.deployments {
		if !slices.ContainsFunc(r.pdbs, func(p *policyv1.PodDisruptionBudget) bool {
			sel, _ := metav1.LabelSelectorAsMap(p.Spec.Selector)
			return selects(sel, d.Spec.Template.Labels)
		}) {
			t.Errorf("Deployment %s has no PodDisruptionBudget", d.Name)
		}
	}
	// The ingress routes /v1/tickets to intake, through existing Services and ports.
	routed := map[string]string{}
	for _, ing := range r.ingresses {
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				svc, ok := r.services[p.Backend.Service.Name]
				if !ok {
					t.Errorf("Ingress %s routes %s to missing Service %s", ing.Name, p.Path, p.Backend.Service.Name)
					continue
				}
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == p.Backend.Service.Port.Name }) {
					t.Errorf("Ingress %s: Service %s has no port %q", ing.Name, svc.Name, p.Backend.Service.Port.Name)
				}
				routed[p.Path] = svc.Name
			}
		}
	}
	if routed["/v1/tickets"] != "intake" {
		t.Errorf("/v1/tickets routes to %q, want intake", routed["/v1/tickets"])
	}

	cm, ok := r.configMaps[configMapName(r)]
	if !ok {
		t.Fatal("no opsdesk-config ConfigMap referenced by the Deployments")
	}
	for name := range cm.Data {
		checkEnvName(t, "ConfigMap "+cm.Name, name)
	}
	wantReplicas := map[string]string{"dev": "1", "production": "3"}[overlay]
	if got := cm.Data["OPSDESK_NATS_REPLICAS"]; got != wantReplicas {
		t.Errorf("OPSDESK_NATS_REPLICAS = %q, want %q in %s", got, wantReplicas, overlay)
	}
	if overlay == "production" {
		for _, d := range r.deployments {
			if d.Spec.Replicas == nil || *d.Spec.Replicas < 3 {
				t.Errorf("production Deployment %s has %v replicas, want 3", d.Name, d.Spec.Replicas)
			}
		}
	}
}

func checkDeployment(t *testing.T, d *appsv1.Deployment, r rendered) {
	t.Helper()
	name := d.Name
	pod := d.Spec.Template.Spec
	if !selects(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("%s: selector does not match its pod labels", name)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(pod.Containers))
	}
	c := pod.Containers[0]
	if !strings.HasPrefix(c.Image, "ghcr.io/opsdesk/opsdesk:") {
		t.Errorf("%s: image %q, want ghcr.io/opsdesk/opsdesk:<tag>", name, c.Image)
	}
	target := targetOf(d)
	if len(c.Args) == 0 || c.Args[0] != "run" || !slices.Contains(knownTargets, target) || target == "all" {
		t.Errorf("%s: args %q, want run --target=<one of %v, not all>", name, c.Args, knownTargets)
	}
	checkProbe(t, name+" readiness", c.ReadinessProbe, "/readyz", c)
	checkProbe(t, name+" liveness", c.LivenessProbe, "/healthz", c)
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: resources %+v, want cpu and memory requests and a memory limit", name, c.Resources)
	}
	nonRoot := pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot
	if sc := c.SecurityContext; sc != nil && sc.RunAsNonRoot != nil {
		nonRoot = *sc.RunAsNonRoot
	}
	if !nonRoot {
		t.Errorf("%s: runAsNonRoot is not set", name)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("%s: container securityContext %+v, want readOnlyRootFilesystem, no privilege escalation, drop ALL", name, sc)
	}
	// The read-only root needs a writable data dir.
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		mounted[m.MountPath] = true
	}
	if !mounted["/data"] {
		t.Errorf("%s: no volume at /data (OPSDESK_DATA_DIR) under a read-only root filesystem", name)
	}
	// DATABASE_URL comes from a Secret, never a literal.
	var dbFromSecret bool
	for _, e := range c.Env {
		checkEnvName(t, "Deployment "+name, e.Name)
		if e.Name == "DATABASE_URL" {
			if e.Value != "" {
				t.Errorf("%s: DATABASE_URL as a literal value", name)
			}
			dbFromSecret = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
			if dbFromSecret && len(r.secrets) > 0 {
				if _, ok := r.secrets[e.ValueFrom.SecretKeyRef.Name]; !ok {
					t.Errorf("%s: DATABASE_URL from Secret %s, which the overlay does not render", name, e.ValueFrom.SecretKeyRef.Name)
				}
			}
		}
	}
	if !dbFromSecret {
		t.Errorf("%s: DATABASE_URL does not come from a Secret", name)
	}
}

func checkProbe(t *testing.T, what string, p *corev1.Probe, path string, c corev1.Container) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s probe: none, want HTTP GET %s", what, path)
		return
	}
	if p.HTTPGet.Path != path {
		t.Errorf("%s probe path %q, want %s", what, p.HTTPGet.Path, path)
	}
	if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return portMatches(p.HTTPGet.Port, cp) }) {
		t.Errorf("%s probe port %s is not a container port", what, p.HTTPGet.Port.String())
	}
}

func portMatches(p intstr.IntOrString, cp corev1.ContainerPort) bool {
	if p.Type == intstr.String {
		return p.StrVal == cp.Name
	}
	return p.IntVal == cp.ContainerPort
}

func targetOf(d *appsv1.Deployment) string {
	for _, c := range d.Spec.Template.Spec.Containers {
		for _, a := range c.Args {
			if t, ok := strings.CutPrefix(a, "--target="); ok {
				return t
			}
		}
	}
	return ""
}

func configMapName(r rendered) string {
	for _, d := range r.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					return ef.ConfigMapRef.Name
				}
			}
		}
	}
	return ""
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// splitYAML splits a multi-document YAML stream.
func splitYAML(t *testing.T, name string, b []byte) [][]byte {
	t.Helper()
	var docs [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

// decodeStrict decodes one document into the k8s.io/api type of its kind,
// rejecting unknown and duplicate fields.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	obj, ok := newObject(tm.Kind)
	if !ok {
		return nil, fmt.Errorf("kind %q (apiVersion %q) has no strict check here", tm.Kind, tm.APIVersion)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	want := map[string]string{
		"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
		"Deployment": "apps/v1", "PodDisruptionBudget": "policy/v1", "Ingress": "networking.k8s.io/v1",
	}[tm.Kind]
	if tm.APIVersion != want {
		return nil, fmt.Errorf("%s: apiVersion %q, want %q", tm.Kind, tm.APIVersion, want)
	}
	return obj, nil
}

func stripComments(doc []byte) []byte {
	var out []byte
	for line := range bytes.Lines(doc) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out = append(out, line...)
		}
	}
	return out
}
