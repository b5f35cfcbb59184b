package authserver

// forgetUser drops what this replica caches of a user's sessions after
// RevokeUser, so it reads them (revoked) from the store again. Other
// replicas refuse the user's Mandate tokens once they synced the revoked
// families (run.go).
func (s *Server) forgetUser(issuer, subject string) { s.sessions.forgetUser(issuer, subject) }
