package sandbox

// Field-level security: fields a user's profile and permission sets give
// no read access to (User.HiddenFields) do not exist for that user. The
// platform leaves them out of the object's describe ("sObject Describe":
// the fields a user sees are those field-level security lets them read,
// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm),
// out of records read without a field list, and answers INVALID_FIELD when
// a query or a fields parameter names one ("Get Records Using sObject
// Relationships": "If the fields parameter is used with fields that don't
// exist or aren't visible to the consumer by field-level security, a 400
// error response is returned",
// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_relationships_get.htm).

import "strings"

// repHiddenFields is the field-level security of DefaultSeed's sales
// reps: the account's annual revenue is for managers and above.
var repHiddenFields = []string{"Account.AnnualRevenue"}

// hidesField reports whether field-level security hides typ.field from u.
// Id is always readable.
func (u *User) hidesField(typ, field string) bool {
	if u == nil || len(u.HiddenFields) == 0 || field == "Id" {
		return false
	}
	for _, h := range u.HiddenFields {
		o, f, _ := strings.Cut(h, ".")
		if strings.EqualFold(o, typ) && strings.EqualFold(f, field) {
			return true
		}
	}
	return false
}

// hiddenRef reports whether a field reference of a query on obj names a
// field u cannot read.
func (u *User) hiddenRef(obj *sobject, f fieldRef) bool {
	if f.rel != nil {
		return u.hidesField(f.rel.target, f.def.name)
	}
	return u.hidesField(obj.name, f.def.name)
}

// checkFLS returns INVALID_FIELD for the first field of q u cannot read,
// in the words Salesforce uses for a field that does not exist.
func (u *User) checkFLS(q *soqlQuery) *queryError {
	refs := append([]fieldRef(nil), q.fields...)
	refs = appendExprRefs(refs, q.where)
	for _, o := range q.orderBy {
		refs = append(refs, o.f)
	}
	for _, f := range refs {
		if u.hiddenRef(q.obj, f) {
			if f.rel != nil {
				return noSuchColumn(f.pos, f.def.name, f.rel.target)
			}
			return noSuchColumn(f.pos, f.def.name, q.obj.name)
		}
	}
	return nil
}

func appendExprRefs(refs []fieldRef, e expr) []fieldRef {
	switch x := e.(type) {
	case andExpr:
		return appendExprRefs(appendExprRefs(refs, x.l), x.r)
	case orExpr:
		return appendExprRefs(appendExprRefs(refs, x.l), x.r)
	case notExpr:
		return appendExprRefs(refs, x.e)
	case cmpExpr:
		return append(refs, x.f)
	case inExpr:
		return append(refs, x.f)
	case likeExpr:
		return append(refs, x.f)
	}
	return refs
}
