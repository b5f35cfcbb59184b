package sandbox

import "strings"

// Seed is the org's initial data. DefaultSeed returns a fixed, deterministic
// seed; tests may build their own.
type Seed struct {
	// OrgID is the 18-character organization id (00D…).
	OrgID string
	// Roles form the role hierarchy.
	Roles []Role
	// Users of the org. Every record's OwnerId must name one of them.
	Users []User
	// Records of the supported sObject types (Account, Contact,
	// Opportunity, Case). Users are served from Users, not from Records.
	Records []Record
	// Sharing is the organization-wide default (internal access) per
	// sObject type. Types not listed take DefaultSharing's value, the
	// defaults of a new Salesforce org. User records are always readable.
	Sharing map[string]SharingModel
	// RecentlyViewed lists, per username, the ids of the records the user
	// viewed most recently, most recent first (the REST API's recent
	// resource; see recent.go). Ids that name no record are refused.
	RecentlyViewed map[string][]string
}

// SharingModel is an object's organization-wide default, named like the
// Metadata API's sharingModel values. Salesforce Help, "Organization-Wide
// Sharing Defaults" and "Organization-Wide Default Access Settings"
// (https://help.salesforce.com/s/articleView?id=platform.sharing_model_fields.htm):
//
//   - Private: only the owner and users above the owner's role in the role
//     hierarchy see a record.
//   - Read (Public Read Only), ReadWrite (Public Read/Write) and
//     ReadWriteTransfer (Public Read/Write/Transfer, cases and leads only):
//     every user sees every record (the sandbox serves reads only, so the
//     three differ only in which objects accept them).
//   - ControlledByParent (contacts): a user sees a contact when they can
//     see its account; a contact without an account is private.
//
// The role hierarchy and ownership add access on top of every model; they
// never take any away.
type SharingModel string

// The organization-wide default access levels.
const (
	SharingPrivate            SharingModel = "Private"
	SharingRead               SharingModel = "Read"
	SharingReadWrite          SharingModel = "ReadWrite"
	SharingReadWriteTransfer  SharingModel = "ReadWriteTransfer"
	SharingControlledByParent SharingModel = "ControlledByParent"
)

// DefaultSharing returns the organization-wide defaults of a new org, per
// Salesforce Help "Default Organization-Wide Sharing Settings": Account
// Public Read/Write, Contact Controlled by Parent, Opportunity Public Read
// Only, Case and Lead Public Read/Write/Transfer. Most orgs keep Opportunity at
// Public Read Only, so a rep can read every opportunity in the org: what a
// user can see is not what they own.
func DefaultSharing() map[string]SharingModel {
	return map[string]SharingModel{
		"Account":     SharingReadWrite,
		"Contact":     SharingControlledByParent,
		"Opportunity": SharingRead,
		"Case":        SharingReadWriteTransfer,
		"Lead":        SharingReadWriteTransfer,
	}
}

// PrivateSharing returns organization-wide defaults that make sharing
// follow ownership and the role hierarchy only (Private everywhere,
// contacts controlled by their account), for tests of the role hierarchy.
func PrivateSharing() map[string]SharingModel {
	return map[string]SharingModel{
		"Account":     SharingPrivate,
		"Contact":     SharingControlledByParent,
		"Opportunity": SharingPrivate,
		"Case":        SharingPrivate,
	}
}

// sharingModels are the access levels each object accepts, as Setup's
// Sharing Settings offers them (Public Read/Write/Transfer for cases and
// leads only; Controlled by Parent for contacts among the objects here).
var sharingModels = map[string][]SharingModel{
	"Account":     {SharingPrivate, SharingRead, SharingReadWrite},
	"Contact":     {SharingPrivate, SharingRead, SharingReadWrite, SharingControlledByParent},
	"Opportunity": {SharingPrivate, SharingRead, SharingReadWrite},
	"Case":        {SharingPrivate, SharingRead, SharingReadWrite, SharingReadWriteTransfer},
}

// Role is a node of the role hierarchy.
type Role struct {
	ID   string // 00E…
	Name string
	// ParentID is the role directly above this one; "" for a top role.
	ParentID string
}

// User is a Salesforce user.
type User struct {
	ID       string // 005…, 18 characters
	Username string // login name, e.g. rep@acme.example (case-insensitive)
	Email    string
	Name     string
	// RoleID places the user in the role hierarchy; "" means no role.
	RoleID string
	// ManagerID is informational (the User.ManagerId field); sharing follows
	// roles, as in Salesforce.
	ManagerID string
	// Profile is informational (e.g. "Standard User").
	Profile string
	// Inactive users cannot obtain tokens ("inactive user").
	Inactive bool
	// Objects lists the sObject types the user's profile may read. nil means
	// all of them; a non-nil empty slice means none (an API-only
	// integration user). User is always readable.
	Objects []string
	// HiddenFields are fields the user's profile and permission sets give
	// no read access to (field-level security), as "Object.Field", e.g.
	// "Account.AnnualRevenue". They are absent from the object's describe,
	// from records returned without a field list, and naming one is
	// INVALID_FIELD (see fls.go).
	HiddenFields []string
	// ReadOnlyFields are fields ("Opportunity.Amount") the user's profile
	// may read but not edit (field-level security): a create or update
	// that sets one answers INVALID_FIELD_FOR_INSERT_UPDATE.
	ReadOnlyFields []string
}

// Record is one sObject record. Fields holds API field names → values:
// string, float64, bool or nil. Dates are "YYYY-MM-DD" strings, datetimes
// "2006-01-02T15:04:05.000+0000" strings. Id and OwnerId are required.
type Record struct {
	Type   string
	Fields map[string]any
}

// Well-known ids of DefaultSeed, so tests can assert exact record sets.
const (
	SeedOrgID = "00D000000000001AAA"

	RoleVP      = "00E000000000001AAA" // VP Sales (top)
	RoleManager = "00E000000000002AAA" // Sales Manager, under VP Sales
	RoleRep     = "00E000000000003AAA" // Sales Rep, under Sales Manager
	RoleMktg    = "00E000000000004AAA" // Marketing (separate top role)

	UserVP          = "005000000000001AAA" // vp@acme.example, Valerie VP
	UserManager     = "005000000000002AAA" // manager@acme.example, Morgan Manager
	UserRep         = "005000000000003AAA" // rep@acme.example, Rita Rep
	UserRep2        = "005000000000004AAA" // rep2@acme.example, Sam Seller
	UserOutsider    = "005000000000005AAA" // outsider@acme.example, Oscar Outsider
	UserIntegration = "005000000000006AAA" // integration@acme.example, no object access

	AccountAcme     = "001000000000001AAA" // owner rep
	AccountGlobex   = "001000000000002AAA" // owner rep2
	AccountInitech  = "001000000000003AAA" // owner manager
	AccountUmbrella = "001000000000004AAA" // owner vp

	OppAcmeRenewal     = "006000000000001AAA" // rep, open
	OppAcmeExpansion   = "006000000000002AAA" // rep, open
	OppAcmePilot       = "006000000000003AAA" // rep, closed won
	OppGlobexNewLogo   = "006000000000004AAA" // rep2, open
	OppGlobexServices  = "006000000000005AAA" // rep2, closed lost
	OppInitechPlatform = "006000000000006AAA" // manager, open
	OppUmbrellaEnt     = "006000000000007AAA" // vp, open

	ContactAcme    = "003000000000001AAA" // rep
	ContactGlobex  = "003000000000002AAA" // rep2
	ContactInitech = "003000000000003AAA" // manager

	CaseAcme   = "500000000000001AAA" // rep, open
	CaseGlobex = "500000000000002AAA" // rep2, closed
)

// DefaultSeed returns the deterministic demo org: a sales hierarchy
// (VP → manager → two reps), an outsider in an unrelated role, and an
// API-only integration user without object permissions. Its sharing is a
// new org's (DefaultSharing): everyone reads every opportunity, account
// and case; set Sharing to PrivateSharing() to see the role hierarchy.
func DefaultSeed() *Seed {
	opp := func(id, name, acct, owner string, amount float64, stage, close string, closed, won bool, prob float64) Record {
		return Record{Type: "Opportunity", Fields: map[string]any{
			"Id": id, "Name": name, "AccountId": acct, "OwnerId": owner, "Amount": amount,
			"StageName": stage, "CloseDate": close, "IsClosed": closed, "IsWon": won,
			"Probability": prob, "CreatedDate": "2026-01-05T09:00:00.000+0000",
		}}
	}
	return &Seed{
		OrgID:          SeedOrgID,
		RecentlyViewed: seedRecentlyViewed(),
		Roles: []Role{
			{ID: RoleVP, Name: "VP Sales"},
			{ID: RoleManager, Name: "Sales Manager", ParentID: RoleVP},
			{ID: RoleRep, Name: "Sales Rep", ParentID: RoleManager},
			{ID: RoleMktg, Name: "Marketing"},
		},
		Users: []User{
			{ID: UserVP, Username: "vp@acme.example", Email: "vp@acme.example", Name: "Valerie VP", RoleID: RoleVP, Profile: "Standard User"},
			{ID: UserManager, Username: "manager@acme.example", Email: "manager@acme.example", Name: "Morgan Manager", RoleID: RoleManager, ManagerID: UserVP, Profile: "Standard User"},
			{ID: UserRep, Username: "rep@acme.example", Email: "rep@acme.example", Name: "Rita Rep", RoleID: RoleRep, ManagerID: UserManager, Profile: "Standard User", HiddenFields: repHiddenFields},
			{ID: UserRep2, Username: "rep2@acme.example", Email: "rep2@acme.example", Name: "Sam Seller", RoleID: RoleRep, ManagerID: UserManager, Profile: "Standard User", HiddenFields: repHiddenFields},
			{ID: UserOutsider, Username: "outsider@acme.example", Email: "outsider@acme.example", Name: "Oscar Outsider", RoleID: RoleMktg, Profile: "Standard User"},
			{ID: UserIntegration, Username: "integration@acme.example", Email: "integration@acme.example", Name: "Integration User", Profile: "Minimum Access - API Only Integrations", Objects: []string{}},
		},
		Records: []Record{
			{Type: "Account", Fields: map[string]any{"Id": AccountAcme, "Name": "Acme Widgets", "Industry": "Manufacturing", "Type": "Customer - Direct", "BillingCity": "San Francisco", "AnnualRevenue": 12000000.0, "OwnerId": UserRep, "CreatedDate": "2025-03-01T10:00:00.000+0000"}},
			{Type: "Account", Fields: map[string]any{"Id": AccountGlobex, "Name": "Globex", "Industry": "Energy", "Type": "Prospect", "BillingCity": "New York", "AnnualRevenue": 54000000.0, "OwnerId": UserRep2, "CreatedDate": "2025-04-11T10:00:00.000+0000"}},
			{Type: "Account", Fields: map[string]any{"Id": AccountInitech, "Name": "Initech", "Industry": "Technology", "Type": "Customer - Channel", "BillingCity": "Austin", "AnnualRevenue": 8000000.0, "OwnerId": UserManager, "CreatedDate": "2025-05-20T10:00:00.000+0000"}},
			{Type: "Account", Fields: map[string]any{"Id": AccountUmbrella, "Name": "Umbrella Corp", "Industry": "Healthcare", "Type": "Customer - Direct", "BillingCity": "Chicago", "AnnualRevenue": 310000000.0, "OwnerId": UserVP, "CreatedDate": "2025-06-02T10:00:00.000+0000"}},

			opp(OppAcmeRenewal, "Acme Widgets - Renewal", AccountAcme, UserRep, 50000, "Negotiation/Review", "2026-12-15", false, false, 90),
			opp(OppAcmeExpansion, "Acme Widgets - Expansion", AccountAcme, UserRep, 120000, "Prospecting", "2027-02-28", false, false, 10),
			opp(OppAcmePilot, "Acme Widgets - Pilot", AccountAcme, UserRep, 15000, "Closed Won", "2026-06-30", true, true, 100),
			opp(OppGlobexNewLogo, "Globex - New Logo", AccountGlobex, UserRep2, 80000, "Qualification", "2027-01-31", false, false, 20),
			opp(OppGlobexServices, "Globex - Services", AccountGlobex, UserRep2, 30000, "Closed Lost", "2026-05-15", true, false, 0),
			opp(OppInitechPlatform, "Initech - Platform", AccountInitech, UserManager, 250000, "Proposal/Price Quote", "2026-11-30", false, false, 75),
			opp(OppUmbrellaEnt, "Umbrella - Enterprise", AccountUmbrella, UserVP, 500000, "Id. Decision Makers", "2027-03-31", false, false, 60),

			{Type: "Contact", Fields: map[string]any{"Id": ContactAcme, "FirstName": "Alice", "LastName": "Anders", "Name": "Alice Anders", "Email": "alice@acme-widgets.example", "Title": "CTO", "Phone": "+1 415 555 0101", "AccountId": AccountAcme, "OwnerId": UserRep}},
			{Type: "Contact", Fields: map[string]any{"Id": ContactGlobex, "FirstName": "Bob", "LastName": "Baker", "Name": "Bob Baker", "Email": "bob@globex.example", "Title": "VP Procurement", "Phone": "+1 212 555 0102", "AccountId": AccountGlobex, "OwnerId": UserRep2}},
			{Type: "Contact", Fields: map[string]any{"Id": ContactInitech, "FirstName": "Carol", "LastName": "Chen", "Name": "Carol Chen", "Email": "carol@initech.example", "Title": "CIO", "Phone": "+1 512 555 0103", "AccountId": AccountInitech, "OwnerId": UserManager}},

			{Type: "Case", Fields: map[string]any{"Id": CaseAcme, "CaseNumber": "00001001", "Subject": "Acme widget calibration drift", "Status": "New", "Priority": "High", "Origin": "Email", "IsClosed": false, "AccountId": AccountAcme, "ContactId": ContactAcme, "OwnerId": UserRep, "CreatedDate": "2026-09-01T08:30:00.000+0000"}},
			{Type: "Case", Fields: map[string]any{"Id": CaseGlobex, "CaseNumber": "00001002", "Subject": "Globex invoice question", "Status": "Closed", "Priority": "Low", "Origin": "Phone", "IsClosed": true, "AccountId": AccountGlobex, "ContactId": ContactGlobex, "OwnerId": UserRep2, "CreatedDate": "2026-08-14T13:00:00.000+0000"}},
		},
	}
}

// fieldType is the SOAP type of a field, as far as the query engine cares.
type fieldType int

const (
	ftID fieldType = iota
	ftString
	ftDouble
	ftDate
	ftDateTime
	ftBool
)

func (t fieldType) String() string {
	switch t {
	case ftID:
		return "id"
	case ftString:
		return "string"
	case ftDouble:
		return "double"
	case ftDate:
		return "date"
	case ftDateTime:
		return "datetime"
	case ftBool:
		return "boolean"
	}
	return "unknown"
}

type fieldDef struct {
	name string
	typ  fieldType
	// searchGroup marks text fields for SOSL: "name", "email", "phone" or
	// "other"; "" means not searchable.
	searchGroup string
}

type relation struct {
	name   string // relationship name, e.g. Account
	field  string // foreign key field, e.g. AccountId
	target string // target sObject type
}

type sobject struct {
	name      string
	prefix    string
	fields    []fieldDef
	byLower   map[string]*fieldDef
	relations map[string]relation // lower-case relationship name →
}

func (o *sobject) field(name string) *fieldDef { return o.byLower[strings.ToLower(name)] }

func newSObject(name, prefix string, fields []fieldDef, rels ...relation) *sobject {
	o := &sobject{name: name, prefix: prefix, fields: fields, byLower: map[string]*fieldDef{}, relations: map[string]relation{}}
	for i := range o.fields {
		o.byLower[strings.ToLower(o.fields[i].name)] = &o.fields[i]
	}
	for _, r := range rels {
		o.relations[strings.ToLower(r.name)] = r
	}
	return o
}

var (
	relAccount = relation{name: "Account", field: "AccountId", target: "Account"}
	relOwner   = relation{name: "Owner", field: "OwnerId", target: "User"}
	relContact = relation{name: "Contact", field: "ContactId", target: "Contact"}
	relManager = relation{name: "Manager", field: "ManagerId", target: "User"}
)

// schema is the describe of the supported objects.
var schema = func() map[string]*sobject {
	objs := []*sobject{
		newSObject("Account", "001", []fieldDef{
			{"Id", ftID, ""}, {"Name", ftString, "name"}, {"Industry", ftString, "other"},
			{"Type", ftString, "other"}, {"BillingCity", ftString, "other"}, {"AnnualRevenue", ftDouble, ""},
			{"OwnerId", ftID, ""}, {"CreatedDate", ftDateTime, ""},
		}, relOwner),
		newSObject("Contact", "003", []fieldDef{
			{"Id", ftID, ""}, {"FirstName", ftString, "name"}, {"LastName", ftString, "name"},
			{"Name", ftString, "name"}, {"Email", ftString, "email"}, {"Title", ftString, "other"},
			{"Phone", ftString, "phone"}, {"AccountId", ftID, ""}, {"OwnerId", ftID, ""},
		}, relAccount, relOwner),
		newSObject("Opportunity", "006", []fieldDef{
			{"Id", ftID, ""}, {"Name", ftString, "name"}, {"AccountId", ftID, ""},
			{"Amount", ftDouble, ""}, {"StageName", ftString, "other"}, {"CloseDate", ftDate, ""},
			{"IsClosed", ftBool, ""}, {"IsWon", ftBool, ""}, {"Probability", ftDouble, ""},
			{"OwnerId", ftID, ""}, {"CreatedDate", ftDateTime, ""},
		}, relAccount, relOwner),
		newSObject("Case", "500", []fieldDef{
			{"Id", ftID, ""}, {"CaseNumber", ftString, "name"}, {"Subject", ftString, "name"},
			{"Status", ftString, "other"}, {"Priority", ftString, "other"}, {"Origin", ftString, "other"},
			{"IsClosed", ftBool, ""}, {"AccountId", ftID, ""}, {"ContactId", ftID, ""},
			{"OwnerId", ftID, ""}, {"CreatedDate", ftDateTime, ""},
		}, relAccount, relContact, relOwner),
		newSObject("User", "005", []fieldDef{
			{"Id", ftID, ""}, {"Username", ftString, "name"}, {"Name", ftString, "name"},
			{"Email", ftString, "email"}, {"UserRoleId", ftID, ""}, {"ManagerId", ftID, ""},
			{"IsActive", ftBool, ""},
		}, relManager),
	}
	m := map[string]*sobject{}
	for _, o := range objs {
		m[strings.ToLower(o.name)] = o
	}
	return m
}()

// searchOrder is the order SOSL searches objects when RETURNING is absent.
var searchOrder = []string{"Account", "Contact", "Opportunity", "Case", "User"}
