package sandbox

// Seed is the instance's initial data. DefaultSeed returns a fixed,
// deterministic seed; tests may build their own.
type Seed struct {
	Users  []User
	Groups []Group
	// Incidents hold incident field values (strings, as the Table API
	// returns them). sys_id and number are required; reference fields hold
	// sys_ids.
	Incidents []map[string]string
	// Records hold rows of the other tables a seed may fill
	// (sc_req_item, sysapproval_approver, kb_knowledge, kb_knowledge_base,
	// user_criteria, kb_uc_can_read_mtom, kb_uc_cannot_read_mtom), by table;
	// see DefaultRecords.
	Records map[string][]map[string]string
}

// User is a sys_user record plus its roles and group memberships.
type User struct {
	SysID     string // 32 hex characters
	UserName  string // user_name
	Email     string
	FirstName string
	LastName  string
	Title     string
	Roles     []string // e.g. itil, admin
	Groups    []string // sys_ids of sys_user_group records
	Inactive  bool     // active=false users cannot authenticate
}

// Group is a sys_user_group record.
type Group struct {
	SysID       string
	Name        string
	Description string
	Manager     string // sys_user sys_id
}

// Well-known sys_ids of DefaultSeed, so tests can assert exact record sets.
const (
	UserITAgent     = "5137153cc611227c000bbd1bd8cd2001" // it.agent, role itil, group Service Desk
	UserRep         = "5137153cc611227c000bbd1bd8cd2002" // rep, rep@acme.example
	UserManager     = "5137153cc611227c000bbd1bd8cd2003" // manager, group Sales Ops
	UserOutsider    = "5137153cc611227c000bbd1bd8cd2004" // outsider, no roles, no groups
	UserIntegration = "5137153cc611227c000bbd1bd8cd2005" // svc.integration, service account

	GroupServiceDesk = "8a4dde73c6112278017a6a4baf547aa1"
	GroupSalesOps    = "8a4dde73c6112278017a6a4baf547aa2"

	IncLaptop    = "9d385017c611228701d22104cc95c371" // INC0010001 caller rep, assigned it.agent
	IncVPN       = "9d385017c611228701d22104cc95c372" // INC0010002 caller rep, opened by it.agent
	IncCRMReport = "9d385017c611228701d22104cc95c373" // INC0010003 caller manager, group Sales Ops
	IncDashboard = "9d385017c611228701d22104cc95c374" // INC0010004 caller it.agent, assigned manager
	IncPrinter   = "9d385017c611228701d22104cc95c375" // INC0010005 caller it.agent, resolved
	IncEmail     = "9d385017c611228701d22104cc95c376" // INC0010006 caller manager, closed
)

// DefaultSeed returns the deterministic demo instance.
func DefaultSeed() *Seed {
	inc := func(sysID, number, short, caller, openedBy, assignedTo, group, state, impact, urgency, opened string) map[string]string {
		return map[string]string{
			"sys_id": sysID, "number": number, "short_description": short, "description": short + ".",
			"caller_id": caller, "opened_by": openedBy, "assigned_to": assignedTo, "assignment_group": group,
			"state": state, "impact": impact, "urgency": urgency, "category": "inquiry",
			"opened_at": opened, "sys_created_on": opened, "sys_updated_on": opened,
		}
	}
	return &Seed{
		Users: []User{
			{SysID: UserITAgent, UserName: "it.agent", Email: "it.agent@acme.example", FirstName: "Ivy", LastName: "Agent", Title: "Service Desk Analyst", Roles: []string{"itil"}, Groups: []string{GroupServiceDesk}},
			{SysID: UserRep, UserName: "rep", Email: "rep@acme.example", FirstName: "Rita", LastName: "Rep", Title: "Account Executive"},
			{SysID: UserManager, UserName: "manager", Email: "manager@acme.example", FirstName: "Morgan", LastName: "Manager", Title: "Sales Manager", Groups: []string{GroupSalesOps}},
			{SysID: UserOutsider, UserName: "outsider", Email: "outsider@acme.example", FirstName: "Oscar", LastName: "Outsider", Title: "Marketing Specialist"},
			{SysID: UserIntegration, UserName: "svc.integration", Email: "integration@acme.example", FirstName: "Integration", LastName: "Service", Title: "Service account"},
		},
		Groups: []Group{
			{SysID: GroupServiceDesk, Name: "Service Desk", Description: "First line IT support", Manager: UserITAgent},
			{SysID: GroupSalesOps, Name: "Sales Ops", Description: "Sales operations and CRM reporting", Manager: UserManager},
		},
		Incidents: []map[string]string{
			inc(IncLaptop, "INC0010001", "Laptop won't boot after update", UserRep, UserRep, UserITAgent, GroupServiceDesk, "2", "2", "2", "2026-10-01 09:15:00"),
			inc(IncVPN, "INC0010002", "VPN disconnects every hour", UserRep, UserITAgent, "", GroupServiceDesk, "1", "3", "2", "2026-10-03 14:02:00"),
			inc(IncCRMReport, "INC0010003", "CRM pipeline report shows wrong totals", UserManager, UserManager, "", GroupSalesOps, "1", "2", "3", "2026-10-05 08:45:00"),
			inc(IncDashboard, "INC0010004", "Forecast dashboard access for new hires", UserITAgent, UserITAgent, UserManager, GroupSalesOps, "2", "3", "3", "2026-10-07 11:30:00"),
			inc(IncPrinter, "INC0010005", "Printer on floor 3 jammed", UserITAgent, UserITAgent, UserITAgent, GroupServiceDesk, "6", "3", "3", "2026-10-08 16:20:00"),
			inc(IncEmail, "INC0010006", "Email quota exceeded", UserManager, UserITAgent, UserITAgent, GroupServiceDesk, "7", "3", "2", "2026-10-09 10:05:00"),
		},
		Records: DefaultRecords(),
	}
}

type fieldKind int

const (
	kString fieldKind = iota
	kRef
	kChoice
	kBool
	kDateTime
	kSysID
)

type fieldSpec struct {
	name     string
	kind     fieldKind
	ref      string            // referenced table for kRef
	choices  map[string]string // value → label for kChoice
	readOnly bool              // not settable through POST/PATCH
}

type tableSpec struct {
	name    string
	fields  []fieldSpec
	byName  map[string]*fieldSpec
	display string // field used as the record's display value
	// super is the table this one extends (sys_db_object.super_class);
	// fields in superFields[super] are defined there.
	super string
}

func (t *tableSpec) field(name string) *fieldSpec { return t.byName[name] }

func newTable(name, display string, fields ...fieldSpec) *tableSpec {
	t := &tableSpec{name: name, display: display, byName: map[string]*fieldSpec{}}
	common := []fieldSpec{
		{name: "sys_id", kind: kSysID, readOnly: true},
		{name: "sys_created_on", kind: kDateTime, readOnly: true},
		{name: "sys_created_by", readOnly: true},
		{name: "sys_updated_on", kind: kDateTime, readOnly: true},
		{name: "sys_updated_by", readOnly: true},
		{name: "sys_mod_count", readOnly: true},
	}
	t.fields = append(append(t.fields, fields...), common...)
	for i := range t.fields {
		t.byName[t.fields[i].name] = &t.fields[i]
	}
	return t
}

var (
	stateChoices   = map[string]string{"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
	priorityChoice = map[string]string{"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
	levelChoices   = map[string]string{"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"}
	categoryChoice = map[string]string{"inquiry": "Inquiry / Help", "software": "Software", "hardware": "Hardware", "network": "Network", "database": "Database"}
)

var tables = func() map[string]*tableSpec {
	ts := []*tableSpec{
		newTable("incident", "number",
			fieldSpec{name: "number", readOnly: true},
			fieldSpec{name: "short_description"},
			fieldSpec{name: "description"},
			fieldSpec{name: "caller_id", kind: kRef, ref: "sys_user"},
			fieldSpec{name: "opened_by", kind: kRef, ref: "sys_user", readOnly: true},
			fieldSpec{name: "assigned_to", kind: kRef, ref: "sys_user"},
			fieldSpec{name: "assignment_group", kind: kRef, ref: "sys_user_group"},
			fieldSpec{name: "state", kind: kChoice, choices: stateChoices},
			fieldSpec{name: "impact", kind: kChoice, choices: levelChoices},
			fieldSpec{name: "urgency", kind: kChoice, choices: levelChoices},
			fieldSpec{name: "priority", kind: kChoice, choices: priorityChoice, readOnly: true},
			fieldSpec{name: "category", kind: kChoice, choices: categoryChoice},
			fieldSpec{name: "active", kind: kBool, readOnly: true},
			fieldSpec{name: "opened_at", kind: kDateTime, readOnly: true},
			fieldSpec{name: "resolved_at", kind: kDateTime, readOnly: true},
			fieldSpec{name: "closed_at", kind: kDateTime, readOnly: true},
			fieldSpec{name: "close_code"},
			fieldSpec{name: "close_notes"},
			fieldSpec{name: "comments"},
			fieldSpec{name: "work_notes"},
		),
		newTable("sys_user", "name",
			fieldSpec{name: "user_name"}, fieldSpec{name: "first_name"}, fieldSpec{name: "last_name"},
			fieldSpec{name: "name"}, fieldSpec{name: "email"}, fieldSpec{name: "title"},
			fieldSpec{name: "active", kind: kBool}, fieldSpec{name: "roles"},
		),
		newTable("sys_user_group", "name",
			fieldSpec{name: "name"}, fieldSpec{name: "description"},
			fieldSpec{name: "manager", kind: kRef, ref: "sys_user"}, fieldSpec{name: "active", kind: kBool},
		),
		// The schema: one sys_db_object row per table, one sys_dictionary
		// row per field (name = the table that defines it, element = the
		// field; element empty for the table's own "collection" row).
		newTable("sys_db_object", "label",
			fieldSpec{name: "name"}, fieldSpec{name: "label"},
			fieldSpec{name: "super_class", kind: kRef, ref: "sys_db_object"},
		),
		newTable("sys_dictionary", "column_label",
			fieldSpec{name: "name"}, fieldSpec{name: "element"}, fieldSpec{name: "column_label"},
			fieldSpec{name: "internal_type"}, fieldSpec{name: "reference", kind: kRef, ref: "sys_db_object"},
			fieldSpec{name: "max_length"}, fieldSpec{name: "active", kind: kBool},
		),
		newTable("sys_user_grmember", "sys_id",
			fieldSpec{name: "user", kind: kRef, ref: "sys_user"},
			fieldSpec{name: "group", kind: kRef, ref: "sys_user_group"},
		),
	}
	ts[0].super = "task"
	m := map[string]*tableSpec{}
	for _, t := range ts {
		m[t.name] = t
	}
	return m
}()

// superFields are the fields a served table inherits from a table the
// sandbox does not serve itself: incident extends task, which defines
// number, short_description, state, assigned_to, the journal fields and
// the sys_ fields (ServiceNow docs: "Task table"). sys_dictionary lists
// them under name=task, as on an instance, so a client that reads a table's
// fields must follow sys_db_object.super_class.
var superFields = map[string]map[string]bool{
	"task": {
		"number": true, "short_description": true, "description": true, "opened_by": true, "opened_at": true,
		"assigned_to": true, "assignment_group": true, "state": true, "impact": true, "urgency": true,
		"priority": true, "active": true, "closed_at": true, "close_notes": true, "comments": true, "work_notes": true,
		"sys_id": true, "sys_created_on": true, "sys_created_by": true, "sys_updated_on": true, "sys_updated_by": true, "sys_mod_count": true,
	},
}

// schemaTables are the tables that describe the others; their rows are
// generated from tables by loadSchema.
var schemaTables = map[string]bool{"sys_db_object": true, "sys_dictionary": true}

// priorityMatrix is ServiceNow's default impact × urgency → priority lookup.
func priorityMatrix(impact, urgency string) string {
	if len(impact) != 1 || len(urgency) != 1 {
		return "5"
	}
	i, u := int(impact[0])-'0', int(urgency[0])-'0'
	if i < 1 || i > 3 || u < 1 || u > 3 {
		return "5"
	}
	return string(rune('0' + min(i+u-1, 5)))
}
