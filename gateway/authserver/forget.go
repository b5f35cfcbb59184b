package authserver

// forgetUser drops what this replica caches of a user's sessions and
// families after RevokeUser. (The lead completes it once the session cache
// and revocation set land.)
func (s *Server) forgetUser(issuer, subject string) {}
