package sandbox

// GET /services/data/vXX.X/sobjects/{sObject}/{id}/{relationshipName}
// [?fields=a,b]: the records related to one record ("Get Records Using
// sObject Relationships",
// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_relationships_get.htm,
// and "Traverse Relationships with Friendly URLs",
// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_relationship_traversal.htm).
//
//   - A child-to-parent relationship (Opportunity/{id}/Account) answers the
//     parent record; "If there's no record associated with a relationship
//     field, a 404 error response is returned" — also when sharing hides it.
//   - A parent-to-child relationship (Account/{id}/Opportunities) answers
//     the set of related records as a query result (totalSize, done,
//     records, nextRecordsUrl); "If the relationship field normally
//     resolves to multiple records and no relationship set exists, a 200
//     response is returned" (an empty set). Sharing applies to each child.
//   - The record itself must be visible to the user (else 404, as GET by
//     id); fields that do not exist or that field-level security hides are
//     400 INVALID_FIELD.

import (
	"fmt"
	"net/http"
	"strings"
)

func (s *Server) handleRelationship(w http.ResponseWriter, r *http.Request, u *User, version, typ, id, relName string) {
	notFound := func() {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
	}
	obj := schema[strings.ToLower(typ)]
	if obj == nil || !u.canRead(obj.name) || !reID.MatchString(id) {
		notFound()
		return
	}
	// The relationship: a lookup of obj (to-one) or a child relationship
	// of obj (to-many) the user's profile can read.
	var target *sobject
	var parentRel *relation
	var childRel *childRelationship
	if rel, ok := obj.relations[strings.ToLower(relName)]; ok {
		parentRel, target = &rel, schema[strings.ToLower(rel.target)]
	} else {
		for _, cr := range childRelationshipsOf(obj.name) {
			if strings.EqualFold(cr.RelationshipName, relName) {
				childRel, target = &cr, schema[strings.ToLower(cr.ChildSObject)]
				break
			}
		}
	}
	if target == nil || !u.canRead(target.name) {
		notFound()
		return
	}
	fields, ok := fieldsParam(w, r, u, target)
	if !ok {
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var rec map[string]any
	for rid, rr := range s.lookupLocked(id) {
		if s.types[rid] == obj.name && s.visibleLocked(u, obj.name, rr) {
			rec = rr
		}
	}
	if rec == nil {
		notFound()
		return
	}
	ctx := s.evalCtxLocked(u)
	if parentRel != nil {
		fk, _ := rec[parentRel.field].(string)
		if fk == "" {
			notFound()
			return
		}
		for rid, pr := range s.lookupLocked(fk) {
			if s.types[rid] == target.name && s.visibleLocked(u, target.name, pr) {
				writeJSON(w, http.StatusOK, s.projectLocked(ctx, version, target.name, pr, fields))
				return
			}
		}
		notFound()
		return
	}
	parentID, _ := rec["Id"].(string)
	var out []*orderedObj
	for _, cid := range s.order[target.name] {
		cr := s.records[cid]
		if fk, _ := cr[childRel.Field].(string); fk == parentID && s.visibleLocked(u, target.name, cr) {
			out = append(out, s.projectLocked(ctx, version, target.name, cr, fields))
		}
	}
	resp := queryResponse{TotalSize: len(out), Done: true, Records: out}
	if len(out) > s.batch {
		loc := s.newCursorLocked(u, version, out)
		resp.Done = false
		resp.Records = out[:s.batch]
		resp.NextRecordsURL = fmt.Sprintf("/services/data/%s/query/%s-%d", version, loc, s.batch)
	}
	if resp.Records == nil {
		resp.Records = []*orderedObj{}
	}
	writeJSON(w, http.StatusOK, resp)
}
