package apicheck

import (
	"bytes"
	"go/ast"
	"go/printer"
	"go/token"
	"strconv"
	"strings"
)

// expr prints a type or value expression on one line, as written, except that
// parameter and result names are dropped from func types.
func (l *lister) expr(e ast.Expr) string {
	var b strings.Builder
	l.writeExpr(&b, e)
	return b.String()
}

// writeExpr writes expr's form of e to b.
func (l *lister) writeExpr(b *strings.Builder, e ast.Expr) {
	switch e := e.(type) {
	case nil:
	case *ast.Ident:
		b.WriteString(e.Name)
	case *ast.BasicLit:
		b.WriteString(e.Value)
	case *ast.SelectorExpr:
		l.writeExpr(b, e.X)
		b.WriteString(".")
		b.WriteString(e.Sel.Name)
	case *ast.StarExpr:
		b.WriteString("*")
		l.writeExpr(b, e.X)
	case *ast.ParenExpr:
		b.WriteString("(")
		l.writeExpr(b, e.X)
		b.WriteString(")")
	case *ast.UnaryExpr:
		b.WriteString(e.Op.String())
		l.writeExpr(b, e.X)
	case *ast.BinaryExpr:
		l.writeExpr(b, e.X)
		b.WriteString(" " + e.Op.String() + " ")
		l.writeExpr(b, e.Y)
	case *ast.ArrayType:
		b.WriteString("[")
		l.writeExpr(b, e.Len)
		b.WriteString("]")
		l.writeExpr(b, e.Elt)
	case *ast.Ellipsis:
		b.WriteString("...")
		l.writeExpr(b, e.Elt)
	case *ast.MapType:
		b.WriteString("map[")
		l.writeExpr(b, e.Key)
		b.WriteString("]")
		l.writeExpr(b, e.Value)
	case *ast.ChanType:
		switch e.Dir {
		case ast.SEND:
			b.WriteString("chan<- ")
		case ast.RECV:
			b.WriteString("<-chan ")
		default:
			b.WriteString("chan ")
		}
		l.writeExpr(b, e.Value)
	case *ast.FuncType:
		b.WriteString("func")
		b.WriteString(l.signature(e))
	case *ast.InterfaceType:
		var elems []string
		for _, f := range e.Methods.List {
			if len(f.Names) == 0 {
				elems = append(elems, l.expr(f.Type))
				continue
			}
			ft, _ := f.Type.(*ast.FuncType)
			for _, n := range f.Names {
				elems = append(elems, n.Name+l.signature(ft))
			}
		}
		writeBraced(b, "interface", elems)
	case *ast.StructType:
		var elems []string
		for _, f := range e.Fields.List {
			var s string
			if len(f.Names) == 0 {
				s = l.expr(f.Type)
			} else {
				s = identList(f.Names) + " " + l.expr(f.Type)
			}
			if f.Tag != nil {
				s += " " + f.Tag.Value
			}
			elems = append(elems, s)
		}
		writeBraced(b, "struct", elems)
	case *ast.IndexExpr:
		l.writeExpr(b, e.X)
		b.WriteString("[")
		l.writeExpr(b, e.Index)
		b.WriteString("]")
	case *ast.IndexListExpr:
		l.writeExpr(b, e.X)
		b.WriteString("[")
		l.writeList(b, e.Indices)
		b.WriteString("]")
	case *ast.CallExpr:
		l.writeExpr(b, e.Fun)
		b.WriteString("(")
		l.writeList(b, e.Args)
		if e.Ellipsis.IsValid() {
			b.WriteString("...")
		}
		b.WriteString(")")
	case *ast.CompositeLit:
		l.writeExpr(b, e.Type)
		b.WriteString("{")
		l.writeList(b, e.Elts)
		b.WriteString("}")
	case *ast.KeyValueExpr:
		l.writeExpr(b, e.Key)
		b.WriteString(": ")
		l.writeExpr(b, e.Value)
	case *ast.FuncLit:
		b.WriteString("func")
		b.WriteString(l.signature(e.Type))
		b.WriteString(" {...}")
	case *ast.TypeAssertExpr:
		l.writeExpr(b, e.X)
		b.WriteString(".(")
		if e.Type == nil {
			b.WriteString("type")
		} else {
			l.writeExpr(b, e.Type)
		}
		b.WriteString(")")
	default:
		// Anything else (a slice expression, say) as go/printer has it, on one line.
		var buf bytes.Buffer
		if err := printer.Fprint(&buf, token.NewFileSet(), e); err != nil {
			b.WriteString("?")
			return
		}
		b.WriteString(strings.Join(strings.Fields(buf.String()), " "))
	}
}

// writeList writes a comma-separated list of expressions.
func (l *lister) writeList(b *strings.Builder, list []ast.Expr) {
	for i, e := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		l.writeExpr(b, e)
	}
}

// writeBraced writes "struct{}" or "struct{ a; b }" as gofmt does on one line.
func writeBraced(b *strings.Builder, kw string, elems []string) {
	b.WriteString(kw)
	if len(elems) == 0 {
		b.WriteString("{}")
		return
	}
	b.WriteString("{ " + strings.Join(elems, "; ") + " }")
}

// identList joins names with ", ".
func identList(ids []*ast.Ident) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = id.Name
	}
	return strings.Join(names, ", ")
}

// signature prints a func type's parameters and results without names:
// "(int, ...string) (bool, error)".
func (l *lister) signature(ft *ast.FuncType) string {
	if ft == nil {
		return "()"
	}
	params := l.fieldTypes(ft.Params)
	s := "(" + strings.Join(params, ", ") + ")"
	results := l.fieldTypes(ft.Results)
	switch len(results) {
	case 0:
	case 1:
		s += " " + results[0]
	default:
		s += " (" + strings.Join(results, ", ") + ")"
	}
	return s
}

// fieldTypes returns the type of each parameter of a list, a type written once for
// several names counting once per name.
func (l *lister) fieldTypes(fl *ast.FieldList) []string {
	if fl == nil {
		return nil
	}
	var out []string
	for _, f := range fl.List {
		t := l.expr(f.Type)
		for range max(1, len(f.Names)) {
			out = append(out, t)
		}
	}
	return out
}

// typeParams prints a type parameter list as written: "[K comparable, V any]",
// "[T, U any]"; "" for none.
func (l *lister) typeParams(fl *ast.FieldList) string {
	if fl == nil || len(fl.List) == 0 {
		return ""
	}
	parts := make([]string, len(fl.List))
	for i, f := range fl.List {
		parts[i] = identList(f.Names) + " " + l.expr(f.Type)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Types of untyped constants, as Go's api files name them, in order of rank: an
// operation on two untyped operands has the type of the higher ranked.
var idealRank = map[string]int{
	"ideal-int": 1, "ideal-char": 2, "ideal-float": 3, "ideal-complex": 4,
	"ideal-string": 5, "ideal-bool": 6,
}

// idealDefault is the type a variable gets from an untyped constant.
var idealDefault = map[string]string{
	"ideal-int": "int", "ideal-char": "rune", "ideal-float": "float64",
	"ideal-complex": "complex128", "ideal-string": "string", "ideal-bool": "bool",
}

// isIdeal reports whether t is the type of an untyped constant.
func isIdeal(t string) bool { return strings.HasPrefix(t, "ideal-") }

// predeclaredTypes are the predeclared type names, which a call converts to.
var predeclaredTypes = map[string]bool{
	"bool": true, "byte": true, "complex64": true, "complex128": true, "error": true,
	"float32": true, "float64": true, "int": true, "int8": true, "int16": true,
	"int32": true, "int64": true, "rune": true, "string": true, "uint": true,
	"uint8": true, "uint16": true, "uint32": true, "uint64": true, "uintptr": true,
	"any": true,
}

// valueType returns the type of a constant or variable: the declared one or the one
// read from the initializer; "" if neither says. A constant may be untyped (ideal-*);
// a variable never is.
func (l *lister) valueType(v *value) string {
	switch v.state {
	case 1:
		return "" // a cycle: not valid Go anyway
	case 2:
		return v.typeStr
	}
	v.state = 1
	var t string
	switch {
	case v.typ != nil:
		t = l.expr(v.typ)
	case v.init == nil:
	case v.index >= 0:
		if call, ok := unparen(v.init).(*ast.CallExpr); ok {
			t = l.callType(call, v.file, v.index, false)
		}
	default:
		t = l.exprType(v.init, v.file, v.kind == token.CONST)
	}
	if v.kind == token.VAR && isIdeal(t) {
		t = idealDefault[t]
	}
	v.state, v.typeStr = 2, t
	return t
}

// exprType reads the type of an initializer from its form; "" if the form does not
// show it. inConst says the expression initializes a constant, so a call in it is a
// conversion or a builtin.
func (l *lister) exprType(e ast.Expr, f *ast.File, inConst bool) string {
	switch e := e.(type) {
	case *ast.ParenExpr:
		return l.exprType(e.X, f, inConst)
	case *ast.BasicLit:
		switch e.Kind {
		case token.INT:
			return "ideal-int"
		case token.FLOAT:
			return "ideal-float"
		case token.IMAG:
			return "ideal-complex"
		case token.CHAR:
			return "ideal-char"
		case token.STRING:
			return "ideal-string"
		}
	case *ast.Ident:
		switch e.Name {
		case "true", "false":
			return "ideal-bool"
		case "iota":
			return "ideal-int"
		}
		if v := l.values[e.Name]; v != nil {
			return l.valueType(v)
		}
		if d := l.funcs[e.Name]; d != nil && d.Type.TypeParams == nil {
			return "func" + l.signature(d.Type)
		}
	case *ast.UnaryExpr:
		switch e.Op {
		case token.AND:
			if t := l.exprType(e.X, f, inConst); t != "" && !isIdeal(t) {
				return "*" + t
			}
		case token.ADD, token.SUB, token.XOR, token.NOT:
			return l.exprType(e.X, f, inConst)
		}
	case *ast.BinaryExpr:
		switch e.Op {
		case token.EQL, token.NEQ, token.LSS, token.LEQ, token.GTR, token.GEQ:
			return "ideal-bool"
		case token.SHL, token.SHR:
			return l.exprType(e.X, f, inConst)
		}
		x, y := l.exprType(e.X, f, inConst), l.exprType(e.Y, f, inConst)
		switch {
		case x == "" || y == "":
			return ""
		case !isIdeal(x):
			return x
		case !isIdeal(y):
			return y
		case idealRank[x] >= idealRank[y]:
			return x
		default:
			return y
		}
	case *ast.CompositeLit:
		if e.Type != nil {
			return l.expr(e.Type)
		}
	case *ast.FuncLit:
		return l.expr(e.Type)
	case *ast.TypeAssertExpr:
		if e.Type != nil {
			return l.expr(e.Type)
		}
	case *ast.CallExpr:
		return l.callType(e, f, -1, inConst)
	}
	return ""
}

// callType reads the type of a call's value (index < 0) or of its result index (a
// multi-value call): a conversion, a builtin, errors.New or fmt.Errorf, or a
// non-generic function of this package.
func (l *lister) callType(call *ast.CallExpr, f *ast.File, index int, inConst bool) string {
	fun := unparen(call.Fun)
	if index < 0 {
		if t := l.conversionType(call, f, inConst); t != "" {
			return t
		}
	}
	if id, ok := fun.(*ast.Ident); ok {
		if d := l.funcs[id.Name]; d != nil && d.Type.TypeParams == nil {
			results := l.fieldTypes(d.Type.Results)
			switch {
			case index < 0 && len(results) == 1:
				return results[0]
			case index >= 0 && index < len(results):
				return results[index]
			}
		}
	}
	return ""
}

// conversionType returns the type of a single-valued call whose form shows it: a
// conversion, a builtin, errors.New, fmt.Errorf or one of unsafe's; "" otherwise.
func (l *lister) conversionType(call *ast.CallExpr, f *ast.File, inConst bool) string {
	switch fn := unparen(call.Fun).(type) {
	case *ast.Ident:
		if t := l.builtinType(fn.Name, call, f, inConst); t != "" {
			return t
		}
		if ts := l.types[fn.Name]; ts != nil && ts.TypeParams == nil {
			return fn.Name
		}
		if predeclaredTypes[fn.Name] && l.funcs[fn.Name] == nil && l.values[fn.Name] == nil {
			return fn.Name
		}
	case *ast.SelectorExpr:
		pkg, ok := fn.X.(*ast.Ident)
		if !ok {
			return ""
		}
		switch path := importPath(f, pkg.Name); {
		case path == "errors" && fn.Sel.Name == "New",
			path == "fmt" && fn.Sel.Name == "Errorf":
			return "error"
		case path == "unsafe" && fn.Sel.Name == "Pointer":
			return "unsafe.Pointer"
		case path == "unsafe" && (fn.Sel.Name == "Sizeof" || fn.Sel.Name == "Alignof" || fn.Sel.Name == "Offsetof"):
			return "uintptr"
		case path != "" && inConst:
			// A call in a constant's initializer is a conversion.
			return l.expr(fn)
		}
	case *ast.IndexExpr, *ast.IndexListExpr:
		// An instantiated generic type of this package is a conversion.
		if name, ok := baseType(fn); ok && l.types[name] != nil {
			return l.expr(fn)
		}
	case *ast.StarExpr, *ast.ArrayType, *ast.MapType, *ast.ChanType, *ast.FuncType, *ast.InterfaceType, *ast.StructType:
		return l.expr(fn)
	}
	return ""
}

// builtinType returns the result type of a call of a builtin function, "" if fn names
// none or the type depends on more than the form shows.
func (l *lister) builtinType(fn string, call *ast.CallExpr, f *ast.File, inConst bool) string {
	if l.funcs[fn] != nil || l.types[fn] != nil || l.values[fn] != nil {
		return "" // declared in the package: not the builtin
	}
	args := call.Args
	switch fn {
	case "new":
		if len(args) == 1 {
			return "*" + l.expr(args[0])
		}
	case "make":
		if len(args) >= 1 {
			return l.expr(args[0])
		}
	case "len", "cap", "copy":
		return "int"
	case "append":
		if len(args) >= 1 {
			return l.exprType(args[0], f, inConst)
		}
	case "min", "max":
		t := ""
		for i, a := range args {
			at := l.exprType(a, f, inConst)
			switch {
			case at == "":
				return ""
			case i == 0, isIdeal(t) && !isIdeal(at), isIdeal(t) && isIdeal(at) && idealRank[at] > idealRank[t]:
				t = at
			}
		}
		return t
	case "real", "imag", "complex":
		for _, a := range args {
			if !isIdeal(l.exprType(a, f, inConst)) {
				return ""
			}
		}
		if fn == "complex" {
			return "ideal-complex"
		}
		return "ideal-float"
	}
	return ""
}

// importPath returns the path of the package that file f imports as name, "" if none.
func importPath(f *ast.File, name string) string {
	for _, imp := range f.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			continue
		}
		local := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			local = imp.Name.Name
		}
		if local == name {
			return path
		}
	}
	return ""
}
