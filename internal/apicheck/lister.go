package apicheck

import (
	"go/ast"
	"go/token"
	"sort"
	"strconv"
	"strings"
)

// lister collects the API lines of one package.
type lister struct {
	prefix  string                     // "pkg <path>, "
	files   []*ast.File                // the package's files
	types   map[string]*ast.TypeSpec   // top-level types by name
	methods map[string][]*ast.FuncDecl // methods by receiver base type name
	funcs   map[string]*ast.FuncDecl   // top-level functions by name
	values  map[string]*value          // top-level constants and variables by name
	lines   map[string]bool            // the listing
}

// value is one top-level constant or variable.
type value struct {
	kind  token.Token // token.CONST or token.VAR
	name  string
	typ   ast.Expr  // the declared type (carried forward in a const group), or nil
	init  ast.Expr  // the initializer (repeated in a const group), or nil
	index int       // which result of a multi-value call init is, or -1
	file  *ast.File // the file that declares it, for its imports

	state   int    // 0 not resolved, 1 resolving, 2 resolved
	typeStr string // the resolved type; "" if unknown
}

// newLister indexes the top-level declarations of a package's files.
func newLister(path string, files []*ast.File) *lister {
	l := &lister{
		prefix:  "pkg " + path + ", ",
		files:   files,
		types:   map[string]*ast.TypeSpec{},
		methods: map[string][]*ast.FuncDecl{},
		funcs:   map[string]*ast.FuncDecl{},
		values:  map[string]*value{},
		lines:   map[string]bool{},
	}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					l.funcs[d.Name.Name] = d
				} else if base := recvBase(d); base != "" {
					l.methods[base] = append(l.methods[base], d)
				}
			case *ast.GenDecl:
				l.collectGen(d, f)
			}
		}
	}
	return l
}

// collectGen records the types, constants and variables of a declaration. In a const
// group a spec without type and values repeats the previous spec's, as Go does.
func (l *lister) collectGen(d *ast.GenDecl, f *ast.File) {
	var prevType ast.Expr
	var prevValues []ast.Expr
	for _, s := range d.Specs {
		switch s := s.(type) {
		case *ast.TypeSpec:
			l.types[s.Name.Name] = s
		case *ast.ValueSpec:
			typ, values := s.Type, s.Values
			if d.Tok == token.CONST {
				if typ == nil && len(values) == 0 {
					typ, values = prevType, prevValues
				}
				prevType, prevValues = typ, values
			}
			for i, n := range s.Names {
				if n.Name == "_" {
					continue
				}
				v := &value{kind: d.Tok, name: n.Name, typ: typ, index: -1, file: f}
				switch {
				case len(values) == len(s.Names):
					v.init = values[i]
				case len(values) == 1:
					v.init, v.index = values[0], i
				}
				l.values[n.Name] = v
			}
		}
	}
}

// recvBase returns the name of a method's receiver base type.
func recvBase(d *ast.FuncDecl) string {
	if len(d.Recv.List) == 0 {
		return ""
	}
	if id, ok := baseType(d.Recv.List[0].Type); ok {
		return id
	}
	return ""
}

// typeName strips pointers, parentheses and type arguments from a type expression and
// returns its name, and whether that is a name of this package rather than a qualified
// one; "" when the expression is no named type.
func typeName(e ast.Expr) (name string, local bool) {
	for {
		switch t := e.(type) {
		case *ast.StarExpr:
			e = t.X
		case *ast.ParenExpr:
			e = t.X
		case *ast.IndexExpr:
			e = t.X
		case *ast.IndexListExpr:
			e = t.X
		case *ast.SelectorExpr:
			return t.Sel.Name, false
		case *ast.Ident:
			return t.Name, true
		default:
			return "", false
		}
	}
}

// baseType returns the name of type expression e if it is a name of this package.
func baseType(e ast.Expr) (string, bool) {
	if name, local := typeName(e); local {
		return name, true
	}
	return "", false
}

// embeddedName is the field name of an embedded field of type e.
func embeddedName(e ast.Expr) string {
	name, _ := typeName(e)
	return name
}

// emit adds a line to the listing.
func (l *lister) emit(s string) { l.lines[l.prefix+s] = true }

// run walks the declarations and fills l.lines.
func (l *lister) run() {
	for _, f := range l.files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.IsExported() {
					l.emit("func " + d.Name.Name + l.typeParams(d.Type.TypeParams) + l.signature(d.Type))
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							l.typeSpec(s)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() {
								l.valueLine(l.values[n.Name])
							}
						}
					}
				}
			}
		}
	}
}

// valueLine emits a constant or variable: its type, or its initializer if the type
// cannot be read from the declaration.
func (l *lister) valueLine(v *value) {
	kw := "var "
	if v.kind == token.CONST {
		kw = "const "
	}
	if t := l.valueType(v); t != "" {
		l.emit(kw + v.name + " " + t)
		return
	}
	init := l.expr(v.init)
	if v.index >= 0 {
		init += " (result " + strconv.Itoa(v.index) + ")"
	}
	l.emit(kw + v.name + " = " + init)
}

// typeSpec emits an exported type, its members and its methods.
func (l *lister) typeSpec(ts *ast.TypeSpec) {
	head := "type " + ts.Name.Name + l.typeParams(ts.TypeParams)
	if ts.Assign.IsValid() {
		l.emit(head + " = " + l.expr(ts.Type))
		return
	}
	under := l.underlying(ts.Type)
	switch t := under.(type) {
	case *ast.StructType:
		l.emit(head + " struct")
		l.structFields(head+" struct, ", t)
		l.promote(ts, t)
	case *ast.InterfaceType:
		methods, embeds, unexported := l.interfaceElems(t, false, map[string]bool{})
		var names []string
		for _, m := range methods {
			names = append(names, m.name)
			l.emit(head + " interface, " + m.name + m.sig)
		}
		for _, e := range embeds {
			names = append(names, e)
			l.emit(head + " interface, embedded " + e)
		}
		if unexported {
			names = append(names, "unexported methods")
			l.emit(head + " interface, unexported methods")
		}
		sort.Strings(names)
		names = dedup(names)
		if len(names) == 0 {
			l.emit(head + " interface {}")
		} else {
			l.emit(head + " interface { " + strings.Join(names, ", ") + " }")
		}
	default:
		l.emit(head + " " + l.expr(under))
	}
	for _, m := range l.methods[ts.Name.Name] {
		if m.Name.IsExported() {
			l.emit("method (" + l.expr(m.Recv.List[0].Type) + ") " + m.Name.Name + l.signature(m.Type))
		}
	}
}

// underlying follows a defined type written over unexported, non-generic types of this
// package ("type T t") down to the first type expression that is not one, so that T
// lists the fields of t's struct. An exported type on the right is left as written.
func (l *lister) underlying(e ast.Expr) ast.Expr {
	seen := map[string]bool{}
	for {
		e = unparen(e)
		id, ok := e.(*ast.Ident)
		if !ok || id.IsExported() || seen[id.Name] {
			return e
		}
		ts := l.types[id.Name]
		if ts == nil || ts.TypeParams != nil {
			return e
		}
		seen[id.Name] = true
		e = ts.Type
	}
}

// structFields emits the exported fields of a struct and its exported embedded types.
func (l *lister) structFields(head string, st *ast.StructType) {
	for _, f := range st.Fields.List {
		if len(f.Names) == 0 {
			if ast.IsExported(embeddedName(f.Type)) {
				l.emit(head + "embedded " + l.expr(f.Type))
			}
			continue
		}
		for _, n := range f.Names {
			if n.IsExported() {
				l.emit(head + n.Name + " " + l.expr(f.Type))
			}
		}
	}
}

// embed is one embedded type of this package on the way down from an exported struct.
type embed struct {
	name   string // the embedded type's name
	ptr    bool   // the path to it passes through a pointer
	listed bool   // the path passes through an exported type, whose listing has them
}

// localEmbed reports whether an embedded field's type is a non-generic type declared
// in this package, whose promoted members the lister can see.
func (l *lister) localEmbed(e ast.Expr) (embed, bool) {
	e = unparen(e)
	ptr := false
	if s, ok := e.(*ast.StarExpr); ok {
		e, ptr = unparen(s.X), true
	}
	id, ok := e.(*ast.Ident)
	if !ok {
		return embed{}, false
	}
	ts := l.types[id.Name]
	if ts == nil || ts.TypeParams != nil || ts.Assign.IsValid() {
		return embed{}, false
	}
	return embed{id.Name, ptr, id.IsExported()}, true
}

// promote emits the exported fields and methods that reach exported struct ts through
// embedded unexported types of this package, depth by depth as Go's selector rules go: a
// name at a shallower depth hides the deeper ones, and a name found twice at the same
// depth is ambiguous and not promoted. Members that come through an embedded exported
// type are left to that type's listing, but they still hide and collide.
func (l *lister) promote(ts *ast.TypeSpec, st *ast.StructType) {
	recv := ts.Name.Name
	if ts.TypeParams != nil {
		var names []string
		for _, f := range ts.TypeParams.List {
			for _, n := range f.Names {
				names = append(names, n.Name)
			}
		}
		recv += "[" + strings.Join(names, ", ") + "]"
	}
	fieldHead := "type " + ts.Name.Name + l.typeParams(ts.TypeParams) + " struct, "

	seen := map[string]bool{}
	var level []embed
	for _, f := range st.Fields.List {
		for _, n := range f.Names {
			seen[n.Name] = true
		}
		if len(f.Names) == 0 {
			seen[embeddedName(f.Type)] = true
			if e, ok := l.localEmbed(f.Type); ok {
				level = append(level, e)
			}
		}
	}
	for _, m := range l.methods[ts.Name.Name] {
		seen[m.Name.Name] = true
	}
	visited := map[string]bool{} // types met at a shallower depth: all their names are seen
	for len(level) > 0 {
		count := map[string]int{}
		line := map[string]string{}
		add := func(e embed, name, s string) {
			count[name]++
			if ast.IsExported(name) && !e.listed {
				line[name] = s
			}
		}
		var next []embed
		for _, e := range level {
			if visited[e.name] {
				continue
			}
			switch u := l.underlying(l.types[e.name].Type).(type) {
			case *ast.StructType:
				for _, f := range u.Fields.List {
					if len(f.Names) == 0 {
						n := embeddedName(f.Type)
						add(e, n, fieldHead+"embedded "+l.expr(f.Type))
						if sub, ok := l.localEmbed(f.Type); ok {
							next = append(next, embed{sub.name, e.ptr || sub.ptr, e.listed || sub.listed})
						}
						continue
					}
					for _, n := range f.Names {
						add(e, n.Name, fieldHead+n.Name+" "+l.expr(f.Type))
					}
				}
			case *ast.InterfaceType:
				// All of its methods are promoted; those of other packages' interfaces
				// it embeds are not seen.
				methods, _, _ := l.interfaceElems(u, true, map[string]bool{})
				for _, m := range methods {
					add(e, m.name, "method ("+recv+") "+m.name+m.sig)
				}
			}
			for _, m := range l.methods[e.name] {
				r := recv
				if _, isPtr := unparen(m.Recv.List[0].Type).(*ast.StarExpr); isPtr && !e.ptr {
					r = "*" + recv
				}
				add(e, m.Name.Name, "method ("+r+") "+m.Name.Name+l.signature(m.Type))
			}
		}
		for _, e := range level {
			visited[e.name] = true
		}
		for n, c := range count {
			if seen[n] {
				continue
			}
			seen[n] = true
			if c == 1 && line[n] != "" {
				l.emit(line[n])
			}
		}
		level = next
	}
}

// method is an interface method: its name and its signature without parameter names.
type method struct{ name, sig string }

// interfaceElems returns an interface's exported methods, its embedded elements
// (interfaces, unions, approximations) as written, and whether it has unexported
// methods. An embedded unexported, non-generic interface of this package is flattened
// into the result; so is an exported one if all is set.
func (l *lister) interfaceElems(it *ast.InterfaceType, all bool, visited map[string]bool) (methods []method, embeds []string, unexported bool) {
	for _, f := range it.Methods.List {
		if len(f.Names) > 0 {
			for _, n := range f.Names {
				if !n.IsExported() {
					unexported = true
					continue
				}
				ft, _ := f.Type.(*ast.FuncType)
				methods = append(methods, method{n.Name, l.signature(ft)})
			}
			continue
		}
		if e, ok := l.localEmbed(f.Type); ok && (all || !e.listed) && !e.ptr && !visited[e.name] {
			if sub, ok := l.underlying(l.types[e.name].Type).(*ast.InterfaceType); ok {
				visited[e.name] = true
				m, em, u := l.interfaceElems(sub, all, visited)
				methods = append(methods, m...)
				embeds = append(embeds, em...)
				unexported = unexported || u
				continue
			}
		}
		embeds = append(embeds, l.expr(f.Type))
	}
	return methods, embeds, unexported
}

// dedup drops adjacent duplicates from a sorted slice, in place.
func dedup(s []string) []string {
	out := s[:0]
	for _, x := range s {
		if len(out) == 0 || x != out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}

// unparen strips the parentheses around an expression.
func unparen(e ast.Expr) ast.Expr {
	for {
		p, ok := e.(*ast.ParenExpr)
		if !ok {
			return e
		}
		e = p.X
	}
}
