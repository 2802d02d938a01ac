package scan_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// validateSARIF checks a SARIF log against the subset schema in testdata.
func validateSARIF(t testing.TB, doc []byte) error {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile("testdata/sarif-2.1.0-subset.schema.json")
	if err != nil {
		t.Fatalf("compile the SARIF schema: %v", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(inst)
}

// validateJUnit checks a JUnit document against testdata/junit.xsd twice:
// with xmllint (libxml2's validator), and with the structural validator
// below, which reads the same XSD. xmllint is required under CI=true
// (.ci/run installs libxml2-utils); elsewhere its absence is logged.
func validateJUnit(t testing.TB, doc []byte) error {
	t.Helper()
	if err := xsdValidate("testdata/junit.xsd", doc); err != nil {
		return fmt.Errorf("structural check: %w", err)
	}
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("xmllint not found, and CI=true: .ci/run installs libxml2-utils")
		}
		t.Log("xmllint not found (apt-get install libxml2-utils): JUnit checked by the structural validator only")
		return nil
	}
	f := filepath.Join(t.TempDir(), "junit.xml")
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/junit.xsd", f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xmllint: %v\n%s", err, out)
	}
	return nil
}

// A small XSD validator for the subset of XML Schema that junit.xsd uses:
// global and local xs:element declarations, xs:complexType with an
// xs:sequence of elements (minOccurs, maxOccurs), xs:attribute (type,
// use="required"), xs:simpleContent extensions of xs:string, and the
// built-in types xs:string, xs:nonNegativeInteger, xs:decimal and
// xs:dateTime. Anything else in the schema is an error, so the validator
// cannot silently ignore a constraint.

type xnode struct {
	name     string
	attrs    map[string]string
	children []*xnode
	text     string
}

func parseXML(r io.Reader) (*xnode, error) {
	dec := xml.NewDecoder(r)
	var stack []*xnode
	var root *xnode
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &xnode{name: tok.Name.Local, attrs: map[string]string{}}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.children = append(p.children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(tok)
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("no root element")
	}
	return root, nil
}

type xsdAttr struct {
	typ      string
	required bool
}

type xsdParticle struct {
	name     string
	min, max int // max -1: unbounded
	decl     *xsdDecl
}

type xsdDecl struct {
	name     string
	attrs    map[string]xsdAttr
	sequence []xsdParticle
	text     bool // character content allowed
}

// xsdRef is a particle that refers to a global element: d.sequence[i].
type xsdRef struct {
	d *xsdDecl
	i int
}

type xsdSchema struct {
	global map[string]*xsdDecl
	refs   []xsdRef // resolved after all globals are read
}

func loadXSD(path string) (*xsdSchema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	root, err := parseXML(f)
	if err != nil {
		return nil, err
	}
	if root.name != "schema" {
		return nil, fmt.Errorf("root is %s, not xs:schema", root.name)
	}
	s := &xsdSchema{global: map[string]*xsdDecl{}}
	for _, c := range root.children {
		if c.name != "element" {
			return nil, fmt.Errorf("unsupported top-level xs:%s", c.name)
		}
		d, err := s.element(c)
		if err != nil {
			return nil, err
		}
		s.global[d.name] = d
	}
	for _, r := range s.refs {
		p := &r.d.sequence[r.i]
		p.decl = s.global[p.name]
		if p.decl == nil {
			return nil, fmt.Errorf("ref to undeclared element %s", p.name)
		}
	}
	return s, nil
}

func (s *xsdSchema) element(n *xnode) (*xsdDecl, error) {
	d := &xsdDecl{name: n.attrs["name"], attrs: map[string]xsdAttr{}}
	if typ, ok := n.attrs["type"]; ok {
		if typ != "xs:string" {
			return nil, fmt.Errorf("element %s: unsupported type %s", d.name, typ)
		}
		d.text = true
		return d, nil
	}
	for _, ct := range n.children {
		if ct.name != "complexType" {
			return nil, fmt.Errorf("element %s: unsupported xs:%s", d.name, ct.name)
		}
		if ct.attrs["mixed"] == "true" {
			d.text = true
		}
		for _, c := range ct.children {
			switch c.name {
			case "sequence":
				for _, e := range c.children {
					if e.name != "element" {
						return nil, fmt.Errorf("element %s: unsupported xs:%s in a sequence", d.name, e.name)
					}
					p := xsdParticle{min: 1, max: 1}
					if v, ok := e.attrs["minOccurs"]; ok {
						p.min, _ = strconv.Atoi(v)
					}
					if v, ok := e.attrs["maxOccurs"]; ok {
						if v == "unbounded" {
							p.max = -1
						} else {
							p.max, _ = strconv.Atoi(v)
						}
					}
					if ref, ok := e.attrs["ref"]; ok {
						p.name = ref
						d.sequence = append(d.sequence, p)
						s.refs = append(s.refs, xsdRef{d, len(d.sequence) - 1})
						continue
					}
					local, err := s.element(e)
					if err != nil {
						return nil, err
					}
					p.name, p.decl = local.name, local
					d.sequence = append(d.sequence, p)
				}
			case "attribute":
				if err := addAttr(d, c); err != nil {
					return nil, err
				}
			case "simpleContent":
				if len(c.children) != 1 || c.children[0].name != "extension" || c.children[0].attrs["base"] != "xs:string" {
					return nil, fmt.Errorf("element %s: unsupported simpleContent", d.name)
				}
				d.text = true
				for _, a := range c.children[0].children {
					if err := addAttr(d, a); err != nil {
						return nil, err
					}
				}
			default:
				return nil, fmt.Errorf("element %s: unsupported xs:%s", d.name, c.name)
			}
		}
	}
	return d, nil
}

func addAttr(d *xsdDecl, a *xnode) error {
	if a.name != "attribute" {
		return fmt.Errorf("element %s: unsupported xs:%s", d.name, a.name)
	}
	typ := a.attrs["type"]
	if _, ok := xsdTypes[typ]; !ok {
		return fmt.Errorf("element %s: attribute %s has unsupported type %q", d.name, a.attrs["name"], typ)
	}
	d.attrs[a.attrs["name"]] = xsdAttr{typ: typ, required: a.attrs["use"] == "required"}
	return nil
}

var xsdTypes = map[string]*regexp.Regexp{
	"xs:string":             regexp.MustCompile(`(?s)^.*$`),
	"xs:nonNegativeInteger": regexp.MustCompile(`^\+?[0-9]+$`),
	"xs:decimal":            regexp.MustCompile(`^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$`),
	"xs:dateTime":           regexp.MustCompile(`^-?[0-9]{4,}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$`),
}

func xsdValidate(schemaPath string, doc []byte) error {
	s, err := loadXSD(schemaPath)
	if err != nil {
		return fmt.Errorf("%s: %w", schemaPath, err)
	}
	root, err := parseXML(bytes.NewReader(doc))
	if err != nil {
		return err
	}
	d := s.global[root.name]
	if d == nil {
		return fmt.Errorf("root element %s is not declared", root.name)
	}
	return validateNode(root, d, "/"+root.name)
}

func validateNode(n *xnode, d *xsdDecl, path string) error {
	for name, v := range n.attrs {
		a, ok := d.attrs[name]
		if !ok {
			return fmt.Errorf("%s: undeclared attribute %s", path, name)
		}
		if !xsdTypes[a.typ].MatchString(v) {
			return fmt.Errorf("%s/@%s: %q is not an %s", path, name, v, a.typ)
		}
	}
	for name, a := range d.attrs {
		if _, ok := n.attrs[name]; a.required && !ok {
			return fmt.Errorf("%s: missing required attribute %s", path, name)
		}
	}
	if !d.text && strings.TrimSpace(n.text) != "" {
		return fmt.Errorf("%s: text not allowed: %q", path, n.text)
	}
	if d.text && len(n.children) > 0 {
		return fmt.Errorf("%s: child elements not allowed", path)
	}
	i := 0
	for _, p := range d.sequence {
		count := 0
		for i < len(n.children) && n.children[i].name == p.name && (p.max < 0 || count < p.max) {
			if err := validateNode(n.children[i], p.decl, fmt.Sprintf("%s/%s[%d]", path, p.name, count+1)); err != nil {
				return err
			}
			i++
			count++
		}
		if count < p.min {
			return fmt.Errorf("%s: want at least %d %s, got %d", path, p.min, p.name, count)
		}
	}
	if i < len(n.children) {
		return fmt.Errorf("%s: unexpected element %s", path, n.children[i].name)
	}
	return nil
}
