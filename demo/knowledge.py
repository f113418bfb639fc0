"""The demo knowledge base: a small bilingual handbook, linked to the demo bot, so that the
README's pushData / searchTest / createTrainingBill examples and a chat with the demo bot
quote something at once."""

DEMO_KNOWLEDGE_BASE_NAME = "demo-handbook"

DEMO_ITEMS = [
    ("员工年假如何申请？", "在人事系统中提交休假申请，直属主管审批后生效。年假天数根据工龄计算。"),
    ("如何重置电脑登录密码？", "访问内部门户的账户页面，点击忘记密码，通过手机验证码重新设置。"),
    ("加班工资怎么计算？", "工作日加班按一点五倍工资计算，周末加班按两倍，法定节假日按三倍。"),
    ("会议室怎么预订？", "在日历应用中选择会议室和时间段，系统自动确认预订结果。"),
    (
        "How do I request annual leave?",
        "Submit a leave request in the HR portal; your manager approves it. Vacation days "
        "depend on years of service.",
    ),
    (
        "How do I reset my computer password?",
        "Open the account page of the intranet portal, click 'forgot password' and confirm "
        "with a code sent to your phone.",
    ),
    (
        "How is overtime pay calculated?",
        "Overtime on workdays is paid at 1.5 times the hourly wage, on weekends at twice and "
        "on public holidays at three times.",
    ),
    (
        "How do I book a meeting room?",
        "Pick a room and a time slot in the calendar app; the booking is confirmed automatically.",
    ),
]
