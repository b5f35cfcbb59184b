package sandbox

// GET /services/data/vXX.X/recent[?limit=n]: the records the calling user
// viewed most recently ("Recently Viewed Items",
// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_recent_items.htm):
// most recent first, at most 200 ("the maximum number of entries in
// RecentlyViewed, which is 200 records"), each as attributes, Id and Name
// ("View Recently Viewed Records",
// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_get_recently_viewed.htm).
// "The API response filters and displays recent records based on the
// permissions of the token or session ID user": a record the user can no
// longer see is left out. Reading a record through the API does not make
// it recently viewed (only the UI and SOQL FOR VIEW do); tests and the
// demo use Seed.RecentlyViewed and MarkViewed.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// maxRecentlyViewed is RecentlyViewed's size per user.
const maxRecentlyViewed = 200

// seedRecentlyViewed is DefaultSeed's recently viewed lists: each sales
// user's own deals first, then a colleague's the user looked at.
func seedRecentlyViewed() map[string][]string {
	return map[string][]string{
		"rep@acme.example":     {OppAcmeRenewal, AccountAcme, ContactAcme, OppGlobexNewLogo, CaseAcme},
		"rep2@acme.example":    {OppGlobexNewLogo, AccountGlobex, ContactGlobex},
		"manager@acme.example": {OppInitechPlatform, AccountInitech, OppAcmeRenewal, ContactInitech, OppGlobexNewLogo},
		"vp@acme.example":      {OppUmbrellaEnt, AccountUmbrella, OppInitechPlatform},
	}
}

// nameFields is the field RecentlyViewed.Name comes from, per object.
var nameFields = map[string]string{"Case": "CaseNumber"}

func (s *Server) loadRecentlyViewed(seed *Seed) error {
	for username, ids := range seed.RecentlyViewed {
		u := s.usernames[strings.ToLower(username)]
		if u == nil {
			return fmt.Errorf("sandbox seed: recently viewed: no user %s", username)
		}
		for i := len(ids) - 1; i >= 0; i-- {
			if err := s.markViewedLocked(u, ids[i]); err != nil {
				return fmt.Errorf("sandbox seed: recently viewed of %s: %w", username, err)
			}
		}
	}
	return nil
}

// MarkViewed records that username viewed the record id now, as opening it
// in the UI does: it moves to the top of the user's recently viewed list.
func (s *Server) MarkViewed(username, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.usernames[strings.ToLower(username)]
	if u == nil {
		return fmt.Errorf("sandbox: no user %s", username)
	}
	return s.markViewedLocked(u, id)
}

func (s *Server) markViewedLocked(u *User, id string) error {
	if s.types[id] == "" {
		return fmt.Errorf("no record %q", id)
	}
	list := []string{id}
	for _, v := range s.viewed[u.ID] {
		if v != id && len(list) < maxRecentlyViewed {
			list = append(list, v)
		}
	}
	s.viewed[u.ID] = list
	return nil
}

func (s *Server) handleRecent(w http.ResponseWriter, r *http.Request, u *User, version string) {
	limit := maxRecentlyViewed
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			// The page does not document the answer to a malformed limit;
			// a 400 in the documented error body is the platform's way
			// for a bad parameter.
			writeAPIError(w, http.StatusBadRequest, "INVALID_QUERY_FILTER_OPERATOR", "limit must be a positive integer: "+clip(l))
			return
		}
		limit = min(n, maxRecentlyViewed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []*orderedObj{}
	for _, id := range s.viewed[u.ID] {
		if len(out) >= limit {
			break
		}
		typ := s.types[id]
		rec := s.records[id]
		if rec == nil || !s.visibleLocked(u, typ, rec) {
			continue
		}
		o := &orderedObj{}
		o.set("attributes", attributes(version, typ, id))
		o.set("Id", id)
		nf := nameFields[typ]
		if nf == "" {
			nf = "Name"
		}
		o.set("Name", rec[nf])
		out = append(out, o)
	}
	writeJSON(w, http.StatusOK, out)
}
